/**
 * What reaches a {@linkcode RedisCluster} from the other nodes over the
 * broker: envelopes on this node's channel and on the channel of all,
 * delivered to this node's connections.
 *
 * @module
 */
import { BacklogFullError } from "../server/backlog_full_error.ts";
import type { Push } from "../server/push.ts";
import type { ClusterHub } from "./cluster.ts";
import { decodeEnvelope, type Envelope } from "./envelope.ts";
import type { RedisLink } from "./redis_link.ts";
import type { StreamOrder } from "./redis_stream_order.ts";
import { isStamped } from "./stream_owner.ts";

/** Refused pushes from other nodes are logged at most this often, in ms. */
const _REFUSED_LOG_MS = 10_000;

/**
 * Decodes each message and hands it to the hub; drops what comes before a
 * hub is attached, after it began closing, or from this node itself. With
 * streams on, stamped pushes (this node's own too: Redis published them to
 * it in their streams' order) go through the {@linkcode StreamOrder}.
 *
 * @example
 * ```ts ignore
 * import { BrokerInbox } from "./broker_inbox.ts";
 * declare const link: import("./redis_link.ts").RedisLink;
 * declare const subscriber: import("./redis_client.ts").RedisSubscriber;
 * const inbox = new BrokerInbox(link);
 * await subscriber.subscribe(link.keys.node(link.nodeId), inbox.onMessage);
 * ```
 */
export class BrokerInbox {
  /** The hub deliveries go to; until it is set, messages are dropped. */
  hub: ClusterHub | undefined;
  /** Where stamped pushes go, with streams on; until it is set they go to the hub as they come. */
  order: StreamOrder | undefined;
  #link: RedisLink;
  /** When a push from another node refused for a full backlog was last logged. */
  #refusedLoggedAt = -Infinity;

  /** @param link Commands, key names, node id, counters and logger. */
  constructor(link: RedisLink) {
    this.#link = link;
  }

  /** Handles one message from a subscribed channel. */
  onMessage = (payload: Uint8Array): void => {
    const hub = this.hub;
    if (hub === undefined || hub.closing) return;
    const link = this.#link;
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(payload);
    } catch (err) {
      link.logger.warn("Dropped a malformed cluster message", { error: err });
      return;
    }
    const own = envelope.from === link.nodeId;
    const stamped = isStamped(envelope);
    // Unstamped, this node delivered its own broadcast when it sent it.
    if (own && !stamped) return;
    if (!own) link.stats.received++;
    const order = this.order;
    if (stamped && order !== undefined) {
      const { from: _, id, ...push } = envelope;
      order.offer(push, own ? id : undefined);
    } else this.deliver(envelope);
    // A stale membership (its removal was lost with Redis): repair it.
    if (envelope.kind === "room" && hub.roomOnline(envelope.room) === 0 && link.connected) {
      link.fire(["SREM", link.keys.room(envelope.room), link.nodeId]);
    }
  };

  /**
   * Hands one push to the hub; a push its backlog refuses is counted there
   * and logged here, and one it refuses otherwise (an op another version
   * allows) is logged and dropped. It never throws: the stream order calls
   * it from its fills, where a throw would leave the stream held for good.
   */
  deliver = (push: Push): number => {
    const hub = this.hub;
    if (hub === undefined || hub.closing) return 0;
    try {
      return hub.deliver(push);
    } catch (err) {
      if (!(err instanceof BacklogFullError)) {
        this.#link.logger.warn("Dropped a push from another node", { error: err });
        return 0;
      }
      // The node that took the push answered it already; this node's members miss it. The hub
      // counts each refusal (comet_pushes_refused_total); the log says so once in a while.
      const now = Date.now();
      if (now - this.#refusedLoggedAt >= _REFUSED_LOG_MS) {
        this.#refusedLoggedAt = now;
        this.#link.logger.warn("Refused pushes from other nodes: this node's backlog is full", {
          error: err.message,
        });
      }
      return 0;
    }
  };
}
