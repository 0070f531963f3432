/**
 * How a {@linkcode RedisCluster} with streams on sends pushes to a room,
 * users or everyone: one script orders the push in each of its streams,
 * keeps it, and publishes it stamped to every node with targets, this one
 * included, so that each node delivers a stream in the one order Redis gave.
 *
 * @module
 */
import { assertPushOp } from "../protocol/op.ts";
import { ALL_STREAM, midStream, roomStream } from "../server/streams.ts";
import type { ClusterPushResult } from "./cluster.ts";
import type { OtherNodes } from "./other_nodes.ts";
import { RedisConnectionError } from "./redis_client.ts";
import type { RedisHistory } from "./redis_history.ts";
import type { RedisLink } from "./redis_link.ts";
import type { StreamOrder } from "./redis_stream_order.ts";
import { PUBLISH_SCRIPT, randomEpoch, RedisScript } from "./redis_stream_scripts.ts";
import { type RedisArg, RedisError, type RedisReply } from "./resp.ts";
import { text } from "./_util.ts";

const _ENVELOPE_VERSION = 1;
const _KIND = { mids: 2, room: 3, all: 4 } as const;

/**
 * Orders and publishes pushes through Redis. Each method answers the
 * cluster's result; `local` counts this node's connections the push reached
 * once it came back from Redis. When Redis cannot be reached before the
 * push is sent, or refuses the script, `fallback` delivers it to this
 * node's connections unstamped and the result is degraded; when the
 * connection drops with the push in flight, nothing is delivered here now
 * (Redis may have taken it: the fill after the reconnect brings it).
 *
 * @example
 * ```ts ignore
 * import { StreamPublisher } from "./redis_stream_publisher.ts";
 * declare const link: import("./redis_link.ts").RedisLink;
 * declare const others: import("./other_nodes.ts").OtherNodes;
 * declare const history: import("./redis_history.ts").RedisHistory;
 * declare const order: import("./redis_stream_order.ts").StreamOrder;
 * const publisher = new StreamPublisher(link, others, history, order);
 * await publisher.pushRoom("live://1", 1000, new Uint8Array(), () => 0);
 * ```
 */
export class StreamPublisher {
  #link: RedisLink;
  #others: OtherNodes;
  #history: RedisHistory;
  #order: StreamOrder;
  #script = new RedisScript(PUBLISH_SCRIPT);

  /**
   * @param link Commands, key names, node id, counters and logger.
   * @param others Who is alive, to clean up room sets naming dead nodes.
   * @param history The limits each stream keeps.
   * @param order Where this node's own pushes come back.
   */
  constructor(link: RedisLink, others: OtherNodes, history: RedisHistory, order: StreamOrder) {
    this.#link = link;
    this.#others = others;
    this.#history = history;
    this.#order = order;
  }

  /**
   * Orders a push to `room` and publishes it to every node with members.
   *
   * @throws {RangeError} When the op is reserved.
   */
  pushRoom(
    room: string,
    op: number,
    body: Uint8Array,
    fallback: () => number,
  ): Promise<ClusterPushResult> {
    const { keys, nodeId } = this.#link;
    const stream = roomStream(room);
    return this.#run({
      mode: "room",
      keys: [keys.position(stream), keys.history(stream), keys.room(room)],
      header: { from: nodeId, to: room },
      channel: keys.node(""),
      mids: [],
      op,
      body,
      fallback,
    });
  }

  /**
   * Orders a push in each user's stream and publishes it to every node
   * holding one of their devices, each with its users.
   *
   * @throws {RangeError} When the op is reserved.
   */
  pushMids(
    mids: readonly number[],
    op: number,
    body: Uint8Array,
    fallback: () => number,
  ): Promise<ClusterPushResult> {
    const { keys, nodeId } = this.#link;
    const unique = [...new Set(mids)];
    const streams = unique.flatMap((mid) => [
      keys.position(midStream(mid)),
      keys.history(midStream(mid)),
    ]);
    return this.#run({
      mode: "mids",
      keys: [...streams, ...unique.map((mid) => keys.mid(mid))],
      header: { from: nodeId },
      channel: keys.node(""),
      mids: unique.map(String),
      op,
      body,
      fallback,
    });
  }

  /**
   * Orders a push to everyone and publishes it once for every node; `speed`
   * is each node's share.
   *
   * @throws {RangeError} When the op is reserved.
   */
  pushAll(
    op: number,
    body: Uint8Array,
    speed: number,
    fallback: () => number,
  ): Promise<ClusterPushResult> {
    const { keys, nodeId } = this.#link;
    return this.#run({
      mode: "all",
      keys: [keys.position(ALL_STREAM), keys.history(ALL_STREAM)],
      header: { from: nodeId, speed },
      channel: keys.all,
      mids: [],
      op,
      body,
      fallback,
    });
  }

  async #run(push: _Publish): Promise<ClusterPushResult> {
    const { mode, op, body, fallback } = push;
    // Checked here: Redis would keep a push that every node then refuses.
    assertPushOp(op);
    const link = this.#link;
    if (!link.routing) return { local: fallback(), remote: 0, degraded: true };
    const { size, ttl } = this.#history.limits;
    const { id, local } = this.#order.expect();
    const head = new Uint8Array(6);
    head[0] = _ENVELOPE_VERSION;
    head[1] = _KIND[mode];
    new DataView(head.buffer).setInt32(2, op);
    const header = JSON.stringify({ ...push.header, id }).slice(0, -1);
    const args: RedisArg[] = [
      mode,
      randomEpoch(),
      size,
      ttl,
      this.#history.positionTtl,
      op,
      body,
      head,
      header,
      push.channel,
      ...push.mids,
    ];
    let reply: RedisReply;
    try {
      reply = await this.#script.run(link.client, push.keys, args);
    } catch (err) {
      this.#order.settle(id, 0);
      if (!(err instanceof RedisConnectionError) && !(err instanceof RedisError)) throw err;
      link.failed(err);
      // Refused: nothing was kept or published. Dropped in flight: Redis may have it.
      const delivered = err instanceof RedisError ? fallback() : 0;
      return { local: delivered, remote: 0, degraded: true };
    }
    const sent = Array.isArray(reply) && Array.isArray(reply[1]) ? reply[1] : [];
    let remote = 0;
    let heard = false;
    for (let i = 0; i + 1 < sent.length; i += 2) {
      const node = sent[i] instanceof Uint8Array ? text.decode(sent[i] as Uint8Array) : "";
      const receivers = Number(sent[i + 1]);
      link.stats.sent++;
      if (mode === "all") {
        // This node's subscriber is one of them, when it is up.
        heard = receivers > 0;
        remote = Math.max(0, receivers - 1);
      } else if (node === link.nodeId) heard = receivers > 0;
      else if (receivers > 0) remote++;
      // Nobody listens and it does not report: a dead node this one never saw the report
      // of, so the cleanup at its expiry could not name this room.
      else if (mode === "room" && !this.#others.live().has(node)) {
        link.fire(["SREM", push.keys[2]!, node]);
      }
    }
    if (!heard) this.#order.settle(id, 0);
    return { local: await local, remote, degraded: false };
  }
}

interface _Publish {
  mode: "room" | "mids" | "all";
  keys: RedisArg[];
  /** The envelope header's fields but its id and stamps. */
  header: Record<string, unknown>;
  channel: string;
  mids: string[];
  op: number;
  body: Uint8Array;
  fallback: () => number;
}
