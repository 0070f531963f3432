/**
 * Request and reply between the workers of a `BusCluster`: one
 * worker asks every live peer for a figure (`ask`), each answers with what
 * its responder for the topic returns (`reply`), and the asker waits for
 * all of them or a timeout.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { BusMessage } from "./bus_messages.ts";
import type { Gathered } from "./cluster.ts";

/** What one worker answers for a topic; the value must survive `structuredClone`. */
export type Responder = () => unknown;

/** A message without its sender, which the bus adds. */
export type Outgoing = BusMessage extends infer M
  ? M extends unknown ? Omit<M, "w" | "i" | "s"> : never
  : never;

interface _Pending {
  expect: Set<number>;
  replies: Map<number, unknown>;
  done: () => void;
}

/**
 * The asking and answering side of gathering, over a `post` that sends a
 * message to every peer.
 *
 * @example
 * ```ts
 * import { Gatherer } from "./bus_gather.ts";
 * import { silentLogger } from "../log.ts";
 *
 * const gatherer = new Gatherer(0, () => {}, silentLogger);
 * gatherer.answer("load", () => 1);
 * const got = await gatherer.gather<number>("load", [], 500);
 * console.log(got.replies); // [{ workerId: 0, value: 1 }]
 * ```
 */
export class Gatherer {
  #workerId: number;
  #post: (message: Outgoing) => void;
  #logger: Logger;
  #responders = new Map<string, Responder>();
  #pending = new Map<number, _Pending>();
  #next = 0;

  /**
   * @param workerId This worker's number.
   * @param post Sends a message to every peer.
   * @param logger Where failed answers are logged.
   */
  constructor(workerId: number, post: (message: Outgoing) => void, logger: Logger) {
    this.#workerId = workerId;
    this.#post = post;
    this.#logger = logger;
  }

  /** Where failed answers are logged; the cluster sets the hub's once attached. */
  set logger(logger: Logger) {
    this.#logger = logger;
  }

  /** Sets what this worker answers for `topic` (replacing an earlier responder). */
  answer(topic: string, responder: Responder): void {
    this.#responders.set(topic, responder);
  }

  /**
   * Asks `peers` for `topic` and resolves once each has answered or after
   * `timeout` ms; this worker's own answer comes first.
   */
  async gather<T>(topic: string, peers: readonly number[], timeout: number): Promise<Gathered<T>> {
    const id = ++this.#next;
    const pending: _Pending = { expect: new Set(peers), replies: new Map(), done: () => {} };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settled = new Promise<void>((resolve) => {
      pending.done = resolve;
      timer = setTimeout(resolve, timeout);
    });
    const replies: { workerId: number; value: T }[] = [];
    const missing: number[] = [];
    const own = this.#responders.get(topic);
    try {
      if (peers.length > 0) {
        this.#pending.set(id, pending);
        this.#post({ t: "ask", id, topic });
      } else pending.done();
      if (own === undefined) missing.push(this.#workerId);
      else {
        try {
          replies.push({ workerId: this.#workerId, value: (await own()) as T });
        } catch (err) {
          this.#logger.warn("Gathering failed on this worker", { topic, error: err });
          missing.push(this.#workerId);
        }
      }
      await settled;
    } finally {
      clearTimeout(timer);
      this.#pending.delete(id);
    }
    for (const w of [...peers].sort((a, b) => a - b)) {
      if (pending.replies.has(w)) replies.push({ workerId: w, value: pending.replies.get(w) as T });
      else missing.push(w);
    }
    return { replies, missing };
  }

  /** Answers an `ask` from a peer whose incarnation is `to`. */
  async onAsk(id: number, topic: string, to: string): Promise<void> {
    const responder = this.#responders.get(topic);
    let ok = responder !== undefined;
    let value: unknown = ok ? undefined : `Nothing answers this topic: ${topic}`;
    if (responder !== undefined) {
      try {
        value = await responder();
      } catch (err) {
        ok = false;
        value = err instanceof Error ? err.message : String(err);
      }
    }
    try {
      this.#post({ t: "reply", to, id, ok, value });
    } catch (err) {
      // A value that cannot be cloned: the asker counts this worker as missing.
      this.#logger.warn("Could not send a gathered figure", { topic, error: err });
      this.#post({ t: "reply", to, id, ok: false, value: String(err) });
    }
  }

  /** Takes a peer's reply to one of this worker's asks. */
  onReply(w: number, id: number, ok: boolean, value: unknown): void {
    const pending = this.#pending.get(id);
    if (pending === undefined || !pending.expect.delete(w)) return;
    if (ok) pending.replies.set(w, value);
    if (pending.expect.size === 0) pending.done();
  }

  /** Worker `w` left: asks under way stop waiting for it. */
  peerLeft(w: number): void {
    for (const pending of this.#pending.values()) {
      if (pending.expect.delete(w) && pending.expect.size === 0) pending.done();
    }
  }

  /** Ends every ask under way with what it has. */
  close(): void {
    for (const pending of this.#pending.values()) pending.done();
  }
}
