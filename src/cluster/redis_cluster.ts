import { silentLogger } from "../log.ts";
import type { PushAllOptions } from "../server/comet.ts";
import type { CometObserver } from "../server/comet_observer.ts";
import type { OnlineTotal, RoomCount } from "../server/push.ts";
import type { HistoryLimits, StreamHistory } from "../server/streams.ts";
import type {
  Cluster,
  ClusterHealth,
  ClusterHub,
  ClusterNode,
  ClusterPushResult,
  ClusterState,
  NodeAddress,
} from "./cluster.ts";
import { BrokerInbox } from "./broker_inbox.ts";
import type { NodeReport } from "./node_report.ts";
import { OtherNodes } from "./other_nodes.ts";
import { PushRouter } from "./push_router.ts";
import {
  RedisClient,
  // deno-lint-ignore no-unused-vars
  type RedisConnectionError,
  RedisSubscriber,
} from "./redis_client.ts";
import { checkClusterOptions, type RedisClusterOptions } from "./redis_cluster_options.ts";
import { RedisKeys } from "./redis_keys.ts";
import { RedisHistory } from "./redis_history.ts";
import { type RedisClusterStats, RedisLink } from "./redis_link.ts";
import { StreamOrder } from "./redis_stream_order.ts";
import { StreamPublisher } from "./redis_stream_publisher.ts";
import { parseRedisUrl, redisAddress } from "./redis_url.ts";
import { ReportExchange } from "./report_exchange.ts";
import { SessionRegistry } from "./session_registry.ts";
import { within } from "./_util.ts";
import { mergeTopRooms } from "./top_rooms.ts";

export type { RedisClusterOptions } from "./redis_cluster_options.ts";
export type { RedisClusterStats } from "./redis_link.ts";

/** How long leaving the cluster at close may wait for Redis. */
const _LEAVE_TIMEOUT = 2_000;

/**
 * Comet nodes clustered through one Redis, as goim's logic tier keeps them:
 *
 * - A session registry: `comet:key:<key>` names the node holding a
 *   connection and `comet:mid:<mid>` maps each of a user's keys to its node,
 *   both with a TTL that heartbeats renew (lazily: at most once per a third
 *   of the TTL per connection, no timer per connection).
 * - Room membership: `comet:room:<room>` is the set of nodes with members,
 *   updated when a room gains its first or loses its last member on a node.
 * - Reports: every interval each node writes its per-room counts to
 *   `comet:online:<node>` (expiring after three intervals) and lists itself
 *   in `comet:nodes`, then reads the others' into a local cache; heartbeat
 *   replies and `/goim/online/*` use the merged counts.
 * - A broker: each node subscribes to `comet:node:<id>` and `comet:all`. A
 *   push delivers to this node's connections at once, then publishes one
 *   envelope per other node holding targets (`all`: one envelope on
 *   `comet:all`, which the sender skips). The receiving node encodes the goim
 *   frame once for all its connections.
 *
 * - Streams, once {@linkcode RedisCluster.history} is asked for: pushes to
 *   rooms, users and everyone are ordered, kept and published by one Lua
 *   script (redis_stream_scripts.ts), to this node too, and every node
 *   delivers each stream in that order, fetching what it missed from Redis
 *   (redis_stream_order.ts).
 *
 * When Redis goes away the node keeps serving its own connections (pushes
 * entering it still reach them, reported as degraded), the connections
 * reconnect by themselves and resubscribe, and the node then re-registers
 * every live session and room it holds.
 *
 * @example
 * ```ts ignore
 * import { RedisCluster } from "./redis_cluster.ts";
 * import { serve } from "../serve.ts";
 *
 * const cluster = await RedisCluster.connect("redis://127.0.0.1:6379", { nodeId: "n1" });
 * await using server = serve({ cluster, tcp: { port: 3101 }, api: { port: 3111 } });
 * const result = await server.cluster.pushRoom("live://1", 1000, new TextEncoder().encode("hi"));
 * console.log(result.local, result.remote);
 * ```
 */
// The parts, each over the shared RedisLink: the registry (session_registry.ts), the report
// exchange (report_exchange.ts, into other_nodes.ts), the routing of pushes (push_router.ts)
// and what arrives over the broker (broker_inbox.ts). This class wires them and merges counts.
export class RedisCluster implements Cluster {
  /** This node's id. */
  readonly nodeId: string;
  /**
   * Settles once both Redis connections are ready and this node's channels
   * subscribed; rejects with {@linkcode RedisConnectionError} when Redis
   * cannot be reached at first (the cluster is then closed).
   */
  readonly ready: Promise<void>;
  #client: RedisClient;
  #subscriber: RedisSubscriber;
  #link: RedisLink;
  #address: string;
  #sessionTtl: number | undefined;
  #reportInterval: number;
  #ownLogger: boolean;
  #others: OtherNodes;
  #router: PushRouter;
  #inbox: BrokerInbox;
  /** What attaching to a hub made; undefined before. */
  #attached: _Attached | undefined;
  #closing: Promise<void> | undefined;
  #everReady = false;
  #lastState: ClusterState = "connecting";
  #signal: AbortSignal | undefined;
  /** With streams on: the history, and once attached, the order and the publisher. */
  #history: RedisHistory | undefined;
  #order: StreamOrder | undefined;
  #publisher: StreamPublisher | undefined;

  /**
   * Connects to Redis and subscribes this node's channels; resolves once
   * both are ready. Then pass it to {@linkcode serve} as `cluster`.
   *
   * @param url `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS.
   * @param options Node id, TTLs, intervals, reconnection.
   * @throws {RedisConnectionError} When Redis cannot be reached or refuses the login.
   * @throws {TypeError} When the URL or the node id is unusable.
   * @throws {RangeError} When a duration is not positive.
   *
   * @example
   * ```ts ignore
   * import { RedisCluster } from "./redis_cluster.ts";
   * await using cluster = await RedisCluster.connect("redis://:secret@10.0.0.5:6379/0", {
   *   nodeId: "comet-1",
   *   reportInterval: 2_000,
   * });
   * console.log(cluster.state); // "ready"
   * ```
   */
  static async connect(url: string, options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const cluster = new RedisCluster(url, options);
    try {
      await cluster.ready;
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  /**
   * Creates the cluster and starts connecting in the background; prefer
   * {@linkcode RedisCluster.connect}, which waits for Redis.
   *
   * @throws {TypeError} When the URL or the node id is unusable.
   * @throws {RangeError} When a duration is not positive.
   */
  constructor(url: string, options: RedisClusterOptions = {}) {
    const checked = checkClusterOptions(options);
    const id = checked.nodeId;
    this.nodeId = id;
    const keys = new RedisKeys(checked.prefix);
    this.#reportInterval = checked.reportInterval;
    this.#sessionTtl = checked.sessionTtl;
    this.#ownLogger = options.logger !== undefined;
    this.#address = redisAddress(parseRedisUrl(url));
    const client = new RedisClient(url, checked.redis);
    let subscriber: RedisSubscriber;
    try {
      subscriber = new RedisSubscriber(url, checked.redis);
    } catch (err) {
      void client.close();
      throw err;
    }
    this.#client = client;
    this.#subscriber = subscriber;
    const link = new RedisLink(client, keys, id, options.logger ?? silentLogger);
    this.#link = link;
    this.#others = new OtherNodes(this.#reportInterval);
    this.#router = new PushRouter(link, this.#others);
    this.#inbox = new BrokerInbox(link);
    for (const target of [client, subscriber]) {
      target.onError((error) => link.logger.debug("Redis error", { error }));
      target.onState(({ state, previous }) => {
        this.#stateChanged();
        // A new connection after a lost one: Redis may have lost everything (a restart)
        // or missed what happened meanwhile (closed sessions, new rooms), and a node whose
        // subscriber was away may have been dropped from room sets by the others.
        if (state === "ready" && previous === "reconnecting") this.#recover();
      });
    }
    // Pub/sub forgets what it published while this node was away: fetch it.
    subscriber.onState(({ state, previous }) => {
      if (state === "ready" && previous === "reconnecting") void this.#order?.refill();
    });
    const subscribed = [
      subscriber.subscribe(keys.node(id), this.#inbox.onMessage),
      subscriber.subscribe(keys.all, this.#inbox.onMessage),
    ];
    // Whoever never awaits `ready` must not get an unhandled rejection from these.
    for (const s of subscribed) s.catch(() => {});
    this.ready = (async () => {
      await Promise.all([client.ready, subscriber.ready]);
      await Promise.all(subscribed);
      this.#everReady = true;
      this.#stateChanged();
    })();
    this.ready.catch(() => {});
    this.#signal = options.signal;
    if (this.#signal?.aborted) void this.close();
    else this.#signal?.addEventListener("abort", this.#abort, { once: true });
  }

  /** Where the cluster stands; see {@linkcode ClusterState}. */
  get state(): ClusterState {
    if (this.#closing !== undefined) return "closed";
    const a = this.#client.state;
    const b = this.#subscriber.state;
    if (a === "closed" || b === "closed") return "closed";
    if (a === "ready" && b === "ready" && this.#everReady) return "ready";
    return this.#everReady ? "reconnecting" : "connecting";
  }

  /** Counters since start. The object is live; copy it to keep a snapshot. */
  get stats(): Readonly<RedisClusterStats> {
    return this.#link.stats;
  }

  /**
   * Binds the hub: hooks into its sessions (registry, room membership,
   * heartbeat counts), and starts reporting.
   *
   * @throws {TypeError} When already attached or closed.
   */
  attach(comet: ClusterHub, address: NodeAddress): void {
    if (this.#closing !== undefined) throw new TypeError("Cluster is closed");
    if (this.#attached !== undefined) {
      throw new TypeError("Cluster is already attached to a hub");
    }
    if (comet.observer !== undefined) {
      throw new TypeError("Hub already has an observer: the cluster needs to be its observer");
    }
    const link = this.#link;
    if (!this.#ownLogger) link.logger = comet.logger;
    const floor = comet.heartbeatTimeout * 1.5;
    this.#sessionTtl ??= comet.heartbeatTimeout * 2;
    if (this.#sessionTtl < floor) {
      link.logger.warn(
        "Session TTL is under 1.5 heartbeat timeouts: idle connections may drop out of the registry",
        { sessionTtl: this.#sessionTtl, heartbeatTimeout: comet.heartbeatTimeout },
      );
    }
    const sessions = new SessionRegistry(link, comet, this.#sessionTtl);
    const reports = new ReportExchange({
      link,
      hub: comet,
      address,
      interval: this.#reportInterval,
      others: this.#others,
      catchUp: () => void sessions.catchUp(),
    });
    const observer: CometObserver = {
      ...sessions.observer,
      roomOnline: (room) => this.roomOnline(room),
    };
    this.#attached = { hub: comet, sessions, reports, observer };
    this.#inbox.hub = comet;
    comet.observer = observer;
    if (this.#history !== undefined) this.#startStreams();
    link.logger.info("Joined the cluster", { node: this.nodeId, redis: this.#address });
    reports.schedule(0);
  }

  /**
   * Turns streams on: from now on Redis orders and keeps every push to a
   * room, users or everyone (see the class documentation), and the hub gets
   * this history, which answers from Redis and never stamps. Call once,
   * before or after attaching.
   *
   * @throws {TypeError} When called twice, or once closed.
   * @throws {RangeError} When a limit is not positive.
   */
  history(limits: HistoryLimits): StreamHistory {
    if (this.#closing !== undefined) throw new TypeError("Cluster is closed");
    if (this.#history !== undefined) throw new TypeError("Cluster history is already made");
    this.#history = new RedisHistory(this.#link, limits);
    if (this.#attached !== undefined) this.#startStreams();
    return this.#history;
  }

  /** Pushes fetched from Redis to fill gaps this node noticed in its streams. */
  get gapsFilled(): number {
    return this.#order?.gapsFilled ?? 0;
  }

  #startStreams(): void {
    const attached = this.#parts();
    const { hub } = attached;
    const order = new StreamOrder({
      hub,
      history: this.#history!,
      deliver: this.#inbox.deliver,
      logger: this.#link.logger,
    });
    this.#order = order;
    this.#inbox.order = order;
    this.#history!.onAnswer = (stream, epoch, top) => order.answered(stream, epoch, top);
    this.#publisher = new StreamPublisher(this.#link, this.#others, this.#history!, order);
    // The order forgets a stream when its last reader here goes.
    const observer = order.observe(attached.observer);
    if (hub.observer === attached.observer) hub.observer = observer;
    attached.observer = observer;
  }

  // Async, so that what the hub throws (not attached yet, a bad speed) rejects as before.

  /**
   * Delivers to this node's connections with these keys, then to the nodes
   * the registry says hold the others.
   */
  async pushKeys(
    keys: readonly string[],
    op: number,
    body: Uint8Array,
  ): Promise<ClusterPushResult> {
    const local = this.#hub().pushKeys(keys, op, body);
    return await this.#router.pushKeys(local, keys, op, body);
  }

  /**
   * Delivers to this node's connections of these users, then to the nodes
   * the registry says hold their other devices.
   */
  async pushMids(
    mids: readonly number[],
    op: number,
    body: Uint8Array,
  ): Promise<ClusterPushResult> {
    const hub = this.#hub();
    const here = () => hub.pushMids(mids, op, body);
    if (this.#publisher !== undefined) return await this.#publisher.pushMids(mids, op, body, here);
    return await this.#router.pushMids(here(), mids, op, body);
  }

  /** Delivers to this node's members of `room`, then to every other node with members. */
  async pushRoom(room: string, op: number, body: Uint8Array): Promise<ClusterPushResult> {
    const hub = this.#hub();
    const here = () => hub.pushRoom(room, op, body);
    if (this.#publisher !== undefined) return await this.#publisher.pushRoom(room, op, body, here);
    return await this.#router.pushRoom(here(), room, op, body);
  }

  /**
   * Delivers to this node's connections watching `op`, and publishes once
   * for every other node. With `speed`, each node paces its share: `speed`
   * divided by the live nodes, as goim's job does.
   *
   * @throws {RangeError} When `speed` is negative.
   */
  async pushAll(
    op: number,
    body: Uint8Array,
    options: PushAllOptions = {},
  ): Promise<ClusterPushResult> {
    const speed = options.speed ?? 0;
    if (!(speed >= 0)) throw new RangeError(`Speed must be a non-negative number: ${speed}`);
    const share = speed / (1 + this.#others.live().size);
    const hub = this.#hub();
    const here = () => hub.pushAll(op, body, { speed: share });
    if (this.#publisher !== undefined) return await this.#publisher.pushAll(op, body, share, here);
    return await this.#router.pushAll(here(), op, body, share);
  }

  /** Members of `room` here plus those the other live nodes last reported. */
  roomOnline(room: string): number {
    if (room === "") return 0;
    return this.#hub().roomOnline(room) + this.#others.roomOnline(room);
  }

  /** The `limit` fullest rooms across the live nodes whose id starts with `prefix`. */
  topRooms(prefix: string, limit: number): RoomCount[] {
    return mergeTopRooms(this.#hub().rooms, this.#others.rooms(), prefix, limit);
  }

  /** Connections and client IPs here plus those the other live nodes last reported. */
  onlineTotal(): OnlineTotal {
    const { ipCount, connCount } = this.#hub().onlineTotal();
    const others = this.#others;
    if (!others.fresh) return { ipCount, connCount };
    return { ipCount: ipCount + others.ipCount, connCount: connCount + others.connections };
  }

  /** This node (its figures now) and the other live nodes (as last reported), by id. */
  nodes(): ClusterNode[] {
    const own = this.#parts().reports.report();
    const out: ClusterNode[] = [_node(own)];
    for (const report of this.#others.live().values()) out.push(_node(report));
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** `ok` while Redis is reachable; the detail names the node, the broker's state and live nodes. */
  health(): ClusterHealth {
    const state = this.state;
    return {
      ok: state === "ready",
      detail: { node: this.nodeId, broker: state, nodes: 1 + this.#others.live().size },
    };
  }

  /**
   * Leaves the cluster: stops reporting, removes this node from the node
   * list and room sets (sessions leave the registry as they close, so close
   * the hub first), and closes both Redis connections. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing === undefined) this.#link.stop();
    return this.#closing ??= this.#shutdown();
  }

  /** Same as {@linkcode RedisCluster.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- losing and regaining Redis ----------------------------------------------

  #stateChanged = (): void => {
    const state = this.state;
    const previous = this.#lastState;
    if (state === previous) return;
    this.#lastState = state;
    const logger = this.#link.logger;
    if (state === "reconnecting") {
      logger.warn("Lost Redis; serving this node's connections only", { node: this.nodeId });
    } else if (state === "ready" && previous === "reconnecting") {
      logger.info("Redis is back", { node: this.nodeId });
    }
  };

  #recover(): void {
    if (this.#attached === undefined || this.#closing !== undefined) return;
    this.#attached.reports.recover();
  }

  // --- closing -----------------------------------------------------------------

  #abort = (): void => void this.close();

  async #shutdown(): Promise<void> {
    this.#signal?.removeEventListener("abort", this.#abort);
    const attached = this.#attached;
    attached?.reports.stop();
    if (attached !== undefined) {
      const { hub, observer } = attached;
      if (hub.observer === observer) hub.observer = undefined;
    }
    if (attached !== undefined && this.#client.state === "ready") {
      const { client, keys } = this.#link;
      const id = this.nodeId;
      const leaving = [
        client.command("SREM", keys.nodes, id),
        client.command("DEL", keys.online(id)),
        ...[...attached.hub.rooms.keys()].map((room) =>
          client.command("SREM", keys.room(room), id)
        ),
      ];
      // Replies come in order: once these are in, so are the session removals before them.
      await within(Promise.allSettled(leaving), _LEAVE_TIMEOUT);
    }
    await Promise.all([this.#client.close(), this.#subscriber.close()]);
    await this.#order?.close();
    await attached?.reports.settled();
    await attached?.sessions.close();
    this.#stateChanged();
  }

  #hub(): ClusterHub {
    return this.#parts().hub;
  }

  #parts(): _Attached {
    if (this.#attached === undefined) {
      throw new TypeError("Cluster is not attached to a hub yet");
    }
    return this.#attached;
  }
}

/** What {@linkcode RedisCluster.attach} makes. */
interface _Attached {
  hub: ClusterHub;
  sessions: SessionRegistry;
  reports: ReportExchange;
  /** The hub's observer while attached: the registry's hooks and the merged room counts. */
  observer: CometObserver;
}

function _node(report: NodeReport): ClusterNode {
  const { id, host, tcpPort, wsPort, wssPort, connections, ipCount, updated, version } = report;
  const node: ClusterNode = { id, host, tcpPort, wsPort, wssPort, connections, ipCount, updated };
  if (version !== undefined) node.version = version;
  return node;
}
