import type { Frame } from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import type { Logger } from "../log.ts";
import { isThenable } from "./_util.ts";
import type { Channel } from "./channel.ts";
import type { Operator, ReplyBody } from "./operator.ts";

/** Upstream messages one connection may have with the operator at once. */
export const MAX_INFLIGHT = 32;

/**
 * Upstream messages (op 4) on their way to the operator. They run side by
 * side, at most {@linkcode MAX_INFLIGHT} per connection, so that a slow
 * operator holds up neither the client's heartbeats nor its other requests;
 * past that the client's reading waits for a free slot. Replies carry the
 * request's seq.
 *
 * @example
 * ```ts ignore
 * import { Upstream } from "./upstream.ts";
 * const upstream = new Upstream(operator, logger);
 * const wait = upstream.send(channel, frame); // a promise only when every slot is taken
 * ```
 */
export class Upstream {
  #operator: Operator;
  #logger: Logger;

  /** Hands messages to `operator.receive`. */
  constructor(operator: Operator, logger: Logger) {
    this.#operator = operator;
    this.#logger = logger;
  }

  /**
   * Hands `frame` to the operator now, or, with every slot of `ch` taken,
   * once one is free: then the promise the next read waits for.
   */
  send(ch: Channel, frame: Frame): Promise<void> | undefined {
    if (ch._inflight >= MAX_INFLIGHT) return this.#whenFree(ch, frame);
    ch._inflight++;
    this.#receive(ch, frame);
  }

  /** Waits for a free upstream slot, then hands the message to the operator. */
  async #whenFree(ch: Channel, frame: Frame): Promise<void> {
    while (ch._inflight >= MAX_INFLIGHT) {
      await new Promise<void>((resolve) => (ch._onSlot = resolve));
    }
    ch._inflight++;
    this.#receive(ch, frame);
  }

  /**
   * Hands an upstream message to the operator. A synchronous operator's
   * reply is queued at once, so replies go out in the order the requests
   * came; an asynchronous one's when it settles.
   */
  #receive(ch: Channel, frame: Frame): void {
    let reply: ReplyBody | undefined | PromiseLike<ReplyBody | undefined>;
    try {
      reply = this.#operator.receive!(ch, frame);
    } catch (err) {
      return this.#failed(ch, err);
    }
    if (!isThenable(reply)) return this.#received(ch, frame, reply);
    Promise.resolve(reply).then(
      (body) => this.#received(ch, frame, body),
      (err) => this.#failed(ch, err),
    );
  }

  #received(ch: Channel, frame: Frame, reply: ReplyBody | undefined): void {
    try {
      if (reply !== undefined) ch.reply(Op.SendMsgReply, reply, frame.seq, frame.ver);
    } catch (err) {
      // A reply body that is neither bytes nor text.
      return this.#failed(ch, err);
    }
    this.#slotFreed(ch);
  }

  #failed(ch: Channel, err: unknown): void {
    this.#logger.warn("Operator receive failed", { key: ch.key, error: err });
    this.#slotFreed(ch);
  }

  /** An upstream message is done with: a reader waiting for a slot goes on. */
  #slotFreed(ch: Channel): void {
    ch._inflight--;
    const wake = ch._onSlot;
    ch._onSlot = undefined;
    wake?.();
  }
}
