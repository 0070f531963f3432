/**
 * The goim client's requests in flight, matched to their replies by seq,
 * with one timer for all their deadlines.
 *
 * @module
 */
import { encodeFrame } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import { _MAX_SEQ, _sendQuietly } from "./_util.ts";
import { AuthError } from "./auth_error.ts";
import { ConnectionClosedError } from "./connection_closed_error.ts";
import type { Link } from "./link.ts";
import { RequestTimeoutError } from "./request_timeout_error.ts";

/**
 * What Comet sends connections still in their handshake when it stops. A
 * DisconnectReply before the AuthReply is otherwise a refusal; this one is
 * not, and a reconnecting client must keep trying rather than give up.
 */
const _SHUTTING_DOWN = "server shutting down";

interface _Pending {
  op: number;
  reply: number;
  timeout: number;
  deadline: number;
  resolve: (body: Uint8Array) => void;
  reject: (error: Error) => void;
  /** The link it went out on; `undefined` while it waits for the client to open. */
  link: Link | undefined;
  /** The encoded frame, kept only while it waits to be sent. */
  frame: Uint8Array | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * Requests waiting for their reply (or, when queued, for a link): each gets
 * a seq in 1..2^31-1 that no other request in flight has, and settles on
 * the reply op with that seq from the link it went out on, on its deadline,
 * on its signal, or when its link is lost.
 *
 * @example
 * ```ts ignore
 * import { RequestTable } from "./request_table.ts";
 * import { Op } from "../protocol/op.ts";
 *
 * const requests = new RequestTable();
 * const reply = requests.call(link, Op.SendMsg, body, 10_000, undefined);
 * // ...later, for an op-5 frame from `link`:
 * requests.reply(link, frame.op, frame.seq, frame.body);
 * ```
 */
export class RequestTable {
  #seq = 0;
  #authSeq = 0;
  #pending = new Map<number, _Pending>();
  #sweepTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepAt = Infinity;

  /** Requests waiting for their reply or for a link. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Registers a request and sends it on `link`, or queues it until
   * {@linkcode RequestTable.flush} when `link` is undefined. Resolves with
   * the reply's body.
   *
   * @throws {RequestTimeoutError} When no reply came within `timeout` ms.
   * @throws {ConnectionClosedError} When the link is lost first.
   */
  call(
    link: Link | undefined,
    op: number,
    body: Uint8Array,
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const seq = this.#nextSeq();
    const frame = encodeFrame(op, seq, body);
    return new Promise((resolve, reject) => {
      const p: _Pending = {
        op,
        reply: op === Op.Auth ? Op.AuthReply : op + 1,
        timeout,
        deadline: performance.now() + timeout,
        resolve,
        reject,
        link,
        frame: link === undefined ? frame : undefined,
        signal,
        onAbort: undefined,
      };
      if (signal !== undefined) {
        p.onAbort = () => {
          if (this.#pending.get(seq) !== p) return;
          this.#settle(seq, p);
          reject(signal.reason);
        };
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.#pending.set(seq, p);
      if (op === Op.Auth) this.#authSeq = seq;
      if (p.deadline !== Infinity) this.#armSweep(p.deadline);
      if (link !== undefined) _sendQuietly(link, frame);
    });
  }

  /**
   * A reply frame from `link`: settles the request it answers.
   *
   * @returns Whether one waited for it; false for a late reply.
   */
  reply(link: Link, op: number, seq: number, body: Uint8Array): boolean {
    const p = this.#pending.get(seq);
    if (p === undefined || p.reply !== op || p.link !== link) return false;
    if (op === Op.AuthReply) this.#authSeq = 0;
    this.#settle(seq, p);
    p.resolve(body);
    return true;
  }

  /**
   * The server sent a DisconnectReply (op 6) with `text`. With an auth in
   * flight it is a refusal: the auth request fails with the
   * {@linkcode AuthError} returned. Otherwise the returned error says the
   * server disconnected.
   */
  disconnected(text: string): Error {
    const seq = this.#authSeq;
    const auth = seq !== 0 && text !== _SHUTTING_DOWN ? this.#pending.get(seq) : undefined;
    if (auth === undefined) {
      return new ConnectionClosedError(`Server disconnected: ${text || "no reason given"}`);
    }
    const error = new AuthError(text);
    this.#settle(seq, auth);
    this.#authSeq = 0;
    auth.reject(error);
    return error;
  }

  /** Sends the queued requests on `link`, which has just opened. */
  flush(link: Link): void {
    for (const p of this.#pending.values()) {
      if (p.link !== undefined) continue;
      p.link = link;
      const frame = p.frame!;
      p.frame = undefined;
      // The link may already be closing; its loss then fails these like any other.
      _sendQuietly(link, frame);
    }
  }

  /** `link` ended: everything sent on it that still waits for a reply fails now. */
  lost(link: Link, reason: Error): void {
    this.#authSeq = 0;
    let error: ConnectionClosedError | undefined;
    for (const [seq, p] of this.#pending) {
      if (p.link !== link) continue;
      error ??= new ConnectionClosedError(
        `Connection closed before the reply: ${reason.message}`,
        { cause: reason },
      );
      this.#settle(seq, p);
      p.reject(error);
    }
  }

  /** Fails every request, queued ones too, with `error`, and stops the deadline timer. */
  failAll(error: Error): void {
    for (const [seq, p] of this.#pending) {
      this.#settle(seq, p);
      p.reject(error);
    }
    clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
  }

  /** The next seq in 1..2^31-1, wrapping, skipping any still in flight. */
  #nextSeq(): number {
    if (this.#pending.size >= _MAX_SEQ) throw new RangeError("Every sequence number is in flight");
    let seq = this.#seq;
    do seq = seq >= _MAX_SEQ ? 1 : seq + 1; while (this.#pending.has(seq));
    return this.#seq = seq;
  }

  #settle(seq: number, p: _Pending): void {
    this.#pending.delete(seq);
    if (p.onAbort !== undefined) p.signal!.removeEventListener("abort", p.onAbort);
    if (this.#pending.size === 0 && this.#sweepTimer !== undefined) {
      clearTimeout(this.#sweepTimer);
      this.#sweepTimer = undefined;
    }
  }

  // One timer serves every request's deadline: it is armed for the earliest
  // known one and, when it fires, fails what is due and re-arms for the rest.
  #armSweep(deadline: number): void {
    if (this.#sweepTimer !== undefined && deadline >= this.#sweepAt) return;
    clearTimeout(this.#sweepTimer);
    this.#sweepAt = deadline;
    this.#sweepTimer = setTimeout(this.#sweep, Math.max(0, deadline - performance.now()));
  }

  #sweep = (): void => {
    this.#sweepTimer = undefined;
    // Timers may fire a hair early against performance.now(); a millisecond of slack.
    const now = performance.now() + 1;
    let next = Infinity;
    for (const [seq, p] of this.#pending) {
      if (p.deadline <= now) {
        this.#settle(seq, p);
        const what = p.op === Op.Auth ? "auth" : `op ${p.op} seq ${seq}`;
        p.reject(
          new RequestTimeoutError(`Request timed out: no reply to ${what} within ${p.timeout} ms`),
        );
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    if (next !== Infinity) this.#armSweep(next);
  };
}
