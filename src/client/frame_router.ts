/**
 * Where the goim client's inbound frames go: handlers by op, and the
 * message streams that get every push.
 *
 * @module
 */
import type { Frame } from "../protocol/frame.ts";
import { isReplyOp } from "../protocol/op.ts";
import { _asError, _decoder, _isInt32 } from "./_util.ts";
import type { ClientFrame, FrameHandler, JsonMessage } from "./client_options.ts";
import { MessageStream } from "./message_stream.ts";

/** What {@linkcode FrameRouter.parseJson} returns for a body that is not JSON, so that `null` and the like stay values. */
export const NOT_JSON: unique symbol = Symbol("not JSON");

/**
 * Hands each frame to the handlers of its op, then (when it is a push, not
 * a reply) to every message stream. A handler that throws is reported; a
 * stream that is full drops its oldest push and counts it.
 *
 * @example
 * ```ts
 * import { FrameRouter } from "./frame_router.ts";
 *
 * const router = new FrameRouter(console.error, () => {});
 * router.on(1000, (frame) => console.log(frame.body.length)); // 2
 * router.deliver({ ver: 1, op: 1000, seq: 0, body: new Uint8Array(2) });
 * ```
 */
export class FrameRouter {
  #handlers = new Map<number, Set<FrameHandler>>();
  #streams = new Set<MessageStream<ClientFrame>>();
  #report: (error: Error) => void;
  #onDropped: () => void;

  /**
   * @param report Gets what throwing handlers throw.
   * @param onDropped Called for every push a full stream drops.
   */
  constructor(report: (error: Error) => void, onDropped: () => void) {
    this.#report = report;
    this.#onDropped = onDropped;
  }

  /**
   * Calls `handler` with every frame of operation `op`.
   *
   * @returns A function that removes the handler.
   * @throws {RangeError} When `op` is not a 32-bit integer.
   * @throws {TypeError} When `handler` is not a function.
   */
  on(op: number, handler: FrameHandler): () => void {
    if (!_isInt32(op)) throw new RangeError(`Op must be a 32-bit integer: ${op}`);
    if (typeof handler !== "function") throw new TypeError("Handler must be a function");
    let set = this.#handlers.get(op);
    if (set === undefined) this.#handlers.set(op, set = new Set());
    const handlers = set;
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
      if (handlers.size === 0 && this.#handlers.get(op) === handlers) this.#handlers.delete(op);
    };
  }

  /**
   * A stream of the pushes from now on, buffering up to `buffer`; an ended
   * one when `ended` (the client is closed).
   */
  messages(buffer: number, ended: boolean): MessageStream<ClientFrame> {
    const stream = new MessageStream<ClientFrame>(buffer, () => void this.#streams.delete(stream));
    if (ended) stream.end();
    else this.#streams.add(stream);
    return stream;
  }

  /** Hands `frame` to its handlers and, when it is a push, to every stream. */
  deliver(frame: ClientFrame): void {
    const handlers = this.#handlers.get(frame.op);
    if (handlers !== undefined) {
      for (const handler of handlers) {
        try {
          handler(frame);
        } catch (err) {
          this.#report(_asError(err));
        }
      }
    }
    if (this.#streams.size === 0 || isReplyOp(frame.op)) return;
    for (const stream of this.#streams) {
      if (!stream.push(frame)) this.#onDropped();
    }
  }

  /** Parses `frame`'s body as JSON, or reports why it is not and returns {@linkcode NOT_JSON}. */
  parseJson<T>(frame: Frame): T | typeof NOT_JSON {
    try {
      return JSON.parse(_decoder.decode(frame.body)) as T;
    } catch (err) {
      this.#report(
        new SyntaxError(`Body of op ${frame.op} is not JSON: ${_asError(err).message}`, {
          cause: err,
        }),
      );
      return NOT_JSON;
    }
  }

  /** `stream`'s pushes with each body parsed as JSON; one that is not JSON is reported and skipped. */
  async *json<T>(
    stream: MessageStream<ClientFrame>,
  ): AsyncGenerator<JsonMessage<T>, void, undefined> {
    try {
      for await (const frame of stream) {
        const value = this.parseJson<T>(frame);
        if (value === NOT_JSON) continue;
        const { op, stream: at } = frame;
        yield at === undefined ? { op, value: value as T } : { op, value: value as T, stream: at };
      }
    } finally {
      await stream.return();
    }
  }

  /** Ends every stream: the client has closed. */
  end(): void {
    for (const stream of this.#streams) stream.end();
    this.#streams.clear();
  }
}
