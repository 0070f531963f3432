import type { ReconnectOptions } from "../reconnect/backoff.ts";
import { type Logger, silentLogger } from "../log.ts";
import { BacklogFullError } from "../server/backlog_full_error.ts";
import type { Channel } from "../server/channel.ts";
import type { PushAllOptions } from "../server/comet.ts";
import type { OnlineTotal, RoomCount } from "../server/push.ts";
import type { CometObserver } from "../server/comet_observer.ts";
import type {
  Cluster,
  ClusterHealth,
  ClusterHub,
  ClusterNode,
  ClusterPushResult,
  ClusterState,
  NodeAddress,
} from "./cluster.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "./envelope.ts";
import { encodeReport, type NodeReport, parseReport } from "./node_report.ts";
import {
  parseRedisUrl,
  RedisClient,
  type RedisClientOptions,
  RedisConnectionError,
  RedisSubscriber,
} from "./redis_client.ts";
import { type RedisArg, RedisError, type RedisReply } from "./resp.ts";

/** Options for {@linkcode RedisCluster}. Durations are in milliseconds. */
export interface RedisClusterOptions {
  /**
   * This node's id, unique in the cluster: letters, digits, `.`, `_` and
   * `-`, at most 64. Default: a random UUID. A node restarted under the same
   * id takes over what the registry still says its predecessor held.
   */
  nodeId?: string;
  /** Prefix of every Redis key and pub/sub channel. Default `comet:`. */
  prefix?: string;
  /**
   * How long a session stays in the registry without a heartbeat renewing
   * it. Heartbeats renew it at most once per a third of it. Default: twice
   * the hub's heartbeat timeout; shorter than 1.5 times that, idle but live
   * connections may drop out of the registry (a warning says so).
   */
  sessionTtl?: number;
  /**
   * How often the node reports its counts and reads everyone else's. A node
   * silent for three intervals drops out of the counts and the node list.
   * Default 5 000.
   */
  reportInterval?: number;
  /** Backoff between reconnection attempts; see {@linkcode RedisClientOptions}. */
  reconnect?: ReconnectOptions;
  /** How long one connection attempt may take. Default 10 000. */
  connectTimeout?: number;
  /** Extra PEM root certificates to trust for `rediss://`. */
  caCerts?: string[];
  /** Where log lines go. Default: the hub's logger once attached. */
  logger?: Logger;
  /** Aborting closes the cluster as {@linkcode RedisCluster.close} does. */
  signal?: AbortSignal;
}

/** Counters of what a {@linkcode RedisCluster} did since it started. */
export interface RedisClusterStats {
  /** Envelopes published for other nodes (one per node, or one for `all`). */
  sent: number;
  /** Envelopes from other nodes delivered to this node's connections. */
  received: number;
  /** Redis commands that failed: Redis unreachable or refusing. */
  failed: number;
  /** Times the node re-registered its sessions and rooms after losing Redis. */
  catchUps: number;
}

const _ID = /^[A-Za-z0-9._-]{1,64}$/;
/** Refused pushes from other nodes are logged at most this often, in ms. */
const _REFUSED_LOG_MS = 10_000;
const _text = new TextDecoder();
/** Channels registered or renewed per round trip while catching up. */
const _BATCH = 512;
/** How long leaving the cluster at close may wait for Redis. */
const _LEAVE_TIMEOUT = 2_000;
/** How long a client's auth or room change may wait for its registry write. */
const _WRITE_TIMEOUT = 1_000;

// Delete a registry entry only while it still names this node: the session may
// have moved to another node since, and that node's entry must stay.
const _DEL_IF_OWNER =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
const _HDEL_IF_OWNER = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then " +
  "return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0";

function _positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number: ${value}`);
  }
  return value;
}

function _strings(reply: RedisReply): string[] {
  if (!Array.isArray(reply)) return [];
  const out: string[] = [];
  for (const item of reply) if (item instanceof Uint8Array) out.push(_text.decode(item));
  return out;
}

/** Resolves with `promise`'s outcome, or with undefined after `ms`. */
async function _within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((
    resolve,
  ) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

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
  #address: string;
  #prefix: string;
  #nodesKey: string;
  #sessionTtl: number | undefined;
  #reportInterval: number;
  #logger: Logger;
  #ownLogger: boolean;
  #comet: ClusterHub | undefined;
  #node: NodeAddress | undefined;
  #renewed = new Map<Channel, number>();
  #others = new Map<string, NodeReport>();
  #otherRooms = new Map<string, number>();
  #otherConnections = 0;
  #otherIps = 0;
  #refreshedAt = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ticking: Promise<void> | undefined;
  #catchingUp: Promise<void> | undefined;
  /** Set when Redis came back: the next report also re-registers everything. */
  #mustCatchUp = false;
  #closing: Promise<void> | undefined;
  #everReady = false;
  #lastState: ClusterState = "connecting";
  #stats: RedisClusterStats = { sent: 0, received: 0, failed: 0, catchUps: 0 };
  /** When a push from another node refused for a full backlog was last logged. */
  #refusedLoggedAt = -Infinity;
  #signal: AbortSignal | undefined;

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
    const id = options.nodeId ?? crypto.randomUUID();
    if (typeof id !== "string" || !_ID.test(id)) {
      throw new TypeError(
        `Node id must be 1 to 64 letters, digits, dots, underscores or dashes: ${String(id)}`,
      );
    }
    this.nodeId = id;
    this.#prefix = options.prefix ?? "comet:";
    if (typeof this.#prefix !== "string") throw new TypeError("Key prefix must be a string");
    this.#nodesKey = `${this.#prefix}nodes`;
    this.#reportInterval = _positive("Report interval", options.reportInterval, 5_000);
    if (options.sessionTtl !== undefined) {
      this.#sessionTtl = _positive("Session TTL", options.sessionTtl, 0);
    }
    this.#logger = options.logger ?? silentLogger;
    this.#ownLogger = options.logger !== undefined;
    const endpoint = parseRedisUrl(url);
    this.#address = endpoint.hostname.includes(":")
      ? `[${endpoint.hostname}]:${endpoint.port}`
      : `${endpoint.hostname}:${endpoint.port}`;
    const redisOptions: RedisClientOptions = {};
    if (options.reconnect !== undefined) redisOptions.reconnect = options.reconnect;
    if (options.connectTimeout !== undefined) redisOptions.connectTimeout = options.connectTimeout;
    if (options.caCerts !== undefined) redisOptions.caCerts = options.caCerts;
    const client = new RedisClient(url, redisOptions);
    let subscriber: RedisSubscriber;
    try {
      subscriber = new RedisSubscriber(url, redisOptions);
    } catch (err) {
      void client.close();
      throw err;
    }
    this.#client = client;
    this.#subscriber = subscriber;
    for (const target of [client, subscriber]) {
      target.onError((error) => this.#logger.debug("Redis error", { error }));
      target.onState(({ state, previous }) => {
        this.#stateChanged();
        // A new connection after a lost one: Redis may have lost everything (a restart)
        // or missed what happened meanwhile (closed sessions, new rooms), and a node whose
        // subscriber was away may have been dropped from room sets by the others.
        if (state === "ready" && previous === "reconnecting") this.#recover();
      });
    }
    const subscribed = [
      this.#subscriber.subscribe(`${this.#prefix}node:${id}`, this.#onMessage),
      this.#subscriber.subscribe(`${this.#prefix}all`, this.#onMessage),
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
    return this.#stats;
  }

  /**
   * Binds the hub: hooks into its sessions (registry, room membership,
   * heartbeat counts), and starts reporting.
   *
   * @throws {TypeError} When already attached or closed.
   */
  attach(comet: ClusterHub, address: NodeAddress): void {
    if (this.#closing !== undefined) throw new TypeError("Cluster is closed");
    if (this.#comet !== undefined) throw new TypeError("Cluster is already attached to a hub");
    if (comet.observer !== undefined) {
      throw new TypeError("Hub already has an observer: the cluster needs to be its observer");
    }
    this.#comet = comet;
    this.#node = { ...address };
    if (!this.#ownLogger) this.#logger = comet.logger;
    const floor = comet.heartbeatTimeout * 1.5;
    this.#sessionTtl ??= comet.heartbeatTimeout * 2;
    if (this.#sessionTtl < floor) {
      this.#logger.warn(
        "Session TTL is under 1.5 heartbeat timeouts: idle connections may drop out of the registry",
        { sessionTtl: this.#sessionTtl, heartbeatTimeout: comet.heartbeatTimeout },
      );
    }
    comet.observer = this.#observer;
    this.#logger.info("Joined the cluster", { node: this.nodeId, redis: this.#address });
    this.#schedule(0);
  }

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
    if (keys.length === 0 || !this.#routing()) return this.#localOnly(local);
    try {
      const owners = await this.#client.command("MGET", ...keys.map((k) => this.#keyKey(k)));
      const byNode = new Map<string, string[]>();
      if (Array.isArray(owners)) {
        for (let i = 0; i < owners.length; i++) {
          const owner = owners[i];
          if (!(owner instanceof Uint8Array)) continue;
          const node = _text.decode(owner);
          if (node === this.nodeId) continue;
          const list = byNode.get(node);
          if (list === undefined) byNode.set(node, [keys[i]!]);
          else list.push(keys[i]!);
        }
      }
      let remote = 0;
      await Promise.all(
        [...byNode].map(async ([node, targets]) => {
          const envelope = { kind: "keys", from: this.nodeId, op, keys: targets, body } as const;
          if (await this.#publish(node, encodeEnvelope(envelope))) remote++;
        }),
      );
      return { local, remote, degraded: false };
    } catch (err) {
      return this.#routingFailed(err, local);
    }
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
    const local = this.#hub().pushMids(mids, op, body);
    if (mids.length === 0 || !this.#routing()) return this.#localOnly(local);
    try {
      // One round trip: the client pipelines commands issued in the same tick.
      const devices = await Promise.all(
        mids.map((mid) => this.#client.command("HGETALL", `${this.#prefix}mid:${mid}`)),
      );
      const byNode = new Map<string, number[]>();
      for (let i = 0; i < mids.length; i++) {
        const fields = devices[i];
        if (!Array.isArray(fields)) continue;
        // HGETALL answers key, node, key, node...; a user's devices may share a node.
        for (let f = 1; f < fields.length; f += 2) {
          const owner = fields[f];
          if (!(owner instanceof Uint8Array)) continue;
          const node = _text.decode(owner);
          if (node === this.nodeId) continue;
          const list = byNode.get(node);
          if (list === undefined) byNode.set(node, [mids[i]!]);
          else if (list[list.length - 1] !== mids[i]) list.push(mids[i]!);
        }
      }
      let remote = 0;
      await Promise.all(
        [...byNode].map(async ([node, targets]) => {
          const envelope = { kind: "mids", from: this.nodeId, op, mids: targets, body } as const;
          if (await this.#publish(node, encodeEnvelope(envelope))) remote++;
        }),
      );
      return { local, remote, degraded: false };
    } catch (err) {
      return this.#routingFailed(err, local);
    }
  }

  /** Delivers to this node's members of `room`, then to every other node with members. */
  async pushRoom(room: string, op: number, body: Uint8Array): Promise<ClusterPushResult> {
    const local = this.#hub().pushRoom(room, op, body);
    if (!this.#routing()) return this.#localOnly(local);
    try {
      const nodes = _strings(await this.#client.command("SMEMBERS", this.#roomKey(room)));
      let remote = 0;
      let bytes: Uint8Array | undefined;
      await Promise.all(nodes.map(async (node) => {
        if (node === this.nodeId) return;
        bytes ??= encodeEnvelope({ kind: "room", from: this.nodeId, op, room, body });
        if (await this.#publish(node, bytes)) remote++;
        // Nobody listens and it does not report: a dead node this one never saw the
        // report of, so the cleanup at its expiry could not name this room.
        else if (!this.#liveOthers().has(node)) this.#fire(["SREM", this.#roomKey(room), node]);
      }));
      return { local, remote, degraded: false };
    } catch (err) {
      return this.#routingFailed(err, local);
    }
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
    const share = speed / (1 + this.#liveOthers().size);
    const local = this.#hub().pushAll(op, body, { speed: share });
    if (!this.#routing()) return this.#localOnly(local);
    try {
      const envelope: Envelope = { kind: "all", from: this.nodeId, op, speed: share, body };
      const receivers = await this.#client.publish(`${this.#prefix}all`, encodeEnvelope(envelope));
      this.#stats.sent++;
      // This node's own subscriber hears it too (and skips it).
      return { local, remote: Math.max(0, receivers - 1), degraded: false };
    } catch (err) {
      return this.#routingFailed(err, local);
    }
  }

  /** Members of `room` here plus those the other live nodes last reported. */
  roomOnline(room: string): number {
    if (room === "") return 0;
    const local = this.#hub().roomOnline(room);
    return this.#fresh() ? local + (this.#otherRooms.get(room) ?? 0) : local;
  }

  /** The `limit` fullest rooms across the live nodes whose id starts with `prefix`. */
  topRooms(prefix: string, limit: number): RoomCount[] {
    const merged = new Map<string, number>();
    if (this.#fresh()) {
      for (const [room, n] of this.#otherRooms) if (room.startsWith(prefix)) merged.set(room, n);
    }
    for (const [room, n] of this.#hub().rooms) {
      if (room.startsWith(prefix)) merged.set(room, (merged.get(room) ?? 0) + n);
    }
    const out: RoomCount[] = [];
    for (const [room, count] of merged) out.push({ room, count });
    out.sort((a, b) => b.count - a.count || (a.room < b.room ? -1 : 1));
    return out.slice(0, Math.max(0, limit));
  }

  /** Connections and client IPs here plus those the other live nodes last reported. */
  onlineTotal(): OnlineTotal {
    const { ipCount, connCount } = this.#hub().onlineTotal();
    if (!this.#fresh()) return { ipCount, connCount };
    return { ipCount: ipCount + this.#otherIps, connCount: connCount + this.#otherConnections };
  }

  /** This node (its figures now) and the other live nodes (as last reported), by id. */
  nodes(): ClusterNode[] {
    const own = this.#report();
    const out: ClusterNode[] = [_node(own)];
    for (const report of this.#liveOthers().values()) out.push(_node(report));
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** `ok` while Redis is reachable; the detail names the node, the broker's state and live nodes. */
  health(): ClusterHealth {
    const state = this.state;
    return {
      ok: state === "ready",
      detail: { node: this.nodeId, broker: state, nodes: 1 + this.#liveOthers().size },
    };
  }

  /**
   * Leaves the cluster: stops reporting, removes this node from the node
   * list and room sets (sessions leave the registry as they close, so close
   * the hub first), and closes both Redis connections. Idempotent.
   */
  close(): Promise<void> {
    return this.#closing ??= this.#shutdown();
  }

  /** Same as {@linkcode RedisCluster.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- sessions --------------------------------------------------------------

  #observer: CometObserver = {
    // Written before the client hears it is in, as goim's logic does on Connect: a push
    // sent from anywhere after the auth reply finds the session and its room.
    opening: ({ key, mid, room }) => {
      if (this.#client.state !== "ready") return;
      let last = this.#register(key, mid);
      if (room !== "" && this.#hub().roomOnline(room) === 0) {
        last = this.#fire(["SADD", this.#roomKey(room), this.nodeId]);
      }
      return this.#written(last);
    },
    opened: (ch) => {
      // Not registered (Redis away): the catch-up after the reconnect will.
      if (this.#client.state === "ready") this.#renewed.set(ch, Date.now());
    },
    joining: (_ch, room) => {
      if (this.#client.state !== "ready" || this.#hub().roomOnline(room) > 0) return;
      return this.#written(this.#fire(["SADD", this.#roomKey(room), this.nodeId]));
    },
    heartbeat: (ch) => {
      const last = this.#renewed.get(ch);
      // Lazily, so a heartbeat costs Redis nothing most of the time.
      if (last !== undefined && Date.now() - last < this.#sessionTtl! / 3) return;
      this.#renew(ch);
    },
    closed: (ch) => this.#unregister(ch),
    roomOpened: (room) => {
      if (this.#client.state === "ready") this.#fire(["SADD", this.#roomKey(room), this.nodeId]);
    },
    roomClosed: (room) => {
      if (this.#client.state === "ready") this.#fire(["SREM", this.#roomKey(room), this.nodeId]);
    },
    roomOnline: (room) => this.roomOnline(room),
  };

  /** Writes a session's registry entries; resolves with the last reply (replies come in order). */
  #register(key: string, mid: number): Promise<unknown> {
    const ttl = Math.ceil(this.#sessionTtl!);
    const last = this.#fire(["SET", this.#keyKey(key), this.nodeId, "PX", ttl]);
    if (mid === 0) return last;
    const hash = `${this.#prefix}mid:${mid}`;
    this.#fire(["HSET", hash, key, this.nodeId]);
    return this.#fire(["PEXPIRE", hash, ttl]);
  }

  /** Writes a live connection's entries again, with a fresh TTL. */
  #renew(ch: Channel): Promise<unknown> | undefined {
    // Not now: the catch-up after the reconnect does it.
    if (this.#client.state !== "ready") return undefined;
    this.#renewed.set(ch, Date.now());
    return this.#register(ch.key, ch.mid);
  }

  /** Resolves once `write` is in Redis, failed, or took too long to keep a client waiting. */
  async #written(write: Promise<unknown>): Promise<void> {
    await _within(write, _WRITE_TIMEOUT);
  }

  #unregister(ch: Channel): void {
    this.#renewed.delete(ch);
    if (this.#client.state !== "ready") return;
    // A newer connection with the same key on this hub keeps the entries it shares.
    const holder = this.#comet?.channel(ch.key);
    if (holder === undefined) {
      this.#fire(["EVAL", _DEL_IF_OWNER, 1, this.#keyKey(ch.key), this.nodeId]);
    }
    if (ch.mid !== 0 && holder?.mid !== ch.mid) {
      const mid = `${this.#prefix}mid:${ch.mid}`;
      this.#fire(["EVAL", _HDEL_IF_OWNER, 1, mid, ch.key, this.nodeId]);
    }
  }

  /** Sends a command whose reply nobody needs; a failure is counted, not thrown. */
  #fire(args: RedisArg[]): Promise<unknown> {
    return this.#client.command(...args).catch(this.#failed);
  }

  #failed = (err: unknown): void => {
    this.#stats.failed++;
    // Expected while Redis is away; anything else is worth a warning.
    if (err instanceof RedisConnectionError) {
      this.#logger.debug("Redis command failed", { error: err });
    } else this.#logger.warn("Redis command failed", { error: err });
  };

  // --- broker ----------------------------------------------------------------

  #onMessage = (payload: Uint8Array): void => {
    const comet = this.#comet;
    if (comet === undefined || comet.closing) return;
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(payload);
    } catch (err) {
      this.#logger.warn("Dropped a malformed cluster message", { error: err });
      return;
    }
    // This node delivered its own broadcast when it sent it.
    if (envelope.from === this.nodeId) return;
    this.#stats.received++;
    try {
      comet.deliver(envelope);
      // A stale membership (its removal was lost with Redis): repair it.
      if (
        envelope.kind === "room" && comet.roomOnline(envelope.room) === 0 &&
        this.#client.state === "ready"
      ) {
        this.#fire(["SREM", this.#roomKey(envelope.room), this.nodeId]);
      }
    } catch (err) {
      if (!(err instanceof BacklogFullError)) throw err;
      // The node that took the push answered it already; this node's members miss it. The hub
      // counts each refusal (comet_pushes_refused_total); the log says so once in a while.
      const now = Date.now();
      if (now - this.#refusedLoggedAt >= _REFUSED_LOG_MS) {
        this.#refusedLoggedAt = now;
        this.#logger.warn("Refused pushes from other nodes: this node's backlog is full", {
          from: envelope.from,
          error: err.message,
        });
      }
    }
  };

  /** Publishes to one node; whether a subscriber (the node) heard it. */
  async #publish(node: string, bytes: Uint8Array): Promise<boolean> {
    const receivers = await this.#client.publish(`${this.#prefix}node:${node}`, bytes);
    this.#stats.sent++;
    return receivers > 0;
  }

  #routing(): boolean {
    return this.#client.state === "ready" && this.#closing === undefined;
  }

  #localOnly(local: number): ClusterPushResult {
    return { local, remote: 0, degraded: this.#routing() ? false : true };
  }

  #routingFailed(err: unknown, local: number): ClusterPushResult {
    if (!(err instanceof RedisConnectionError) && !(err instanceof RedisError)) throw err;
    this.#failed(err);
    return { local, remote: 0, degraded: true };
  }

  // --- reports ---------------------------------------------------------------

  #report(): NodeReport {
    const comet = this.#hub();
    const { ipCount, connCount } = comet.onlineTotal();
    return {
      id: this.nodeId,
      ...this.#node!,
      connections: connCount,
      ipCount,
      updated: Date.now(),
      rooms: comet.rooms,
    };
  }

  #schedule(delay: number): void {
    if (this.#closing !== undefined || this.#ticking !== undefined) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#tick, delay);
  }

  #tick = (): void => {
    this.#timer = undefined;
    // A Redis that stops answering without dropping the connection must not stall reports.
    this.#ticking = _within(this.#exchange(), this.#reportInterval * 3)
      .catch((err) => this.#failed(err))
      .finally(() => {
        this.#ticking = undefined;
        const now = this.#mustCatchUp && this.#client.state === "ready";
        this.#schedule(now ? 0 : this.#reportInterval);
      });
  };

  /** Writes this node's report, reads everyone else's, and forgets nodes gone silent. */
  async #exchange(): Promise<void> {
    if (this.#client.state !== "ready" || this.#comet === undefined) return;
    const id = this.nodeId;
    const onlineKey = (node: string) => `${this.#prefix}online:${node}`;
    const expiry = Math.ceil(this.#reportInterval * 3);
    // The report goes first: a node that sees this one listed must find its report.
    const [, added, members] = await Promise.all([
      this.#client.command("SET", onlineKey(id), encodeReport(this.#report()), "PX", expiry),
      this.#client.command("SADD", this.#nodesKey, id),
      this.#client.command("SMEMBERS", this.#nodesKey),
    ]);
    const ids = _strings(members).filter((node) => node !== id);
    const reports = ids.length === 0
      ? []
      : await this.#client.command("MGET", ...ids.map(onlineKey)) as RedisReply[];
    const others = new Map<string, NodeReport>();
    for (let i = 0; i < ids.length; i++) {
      const node = ids[i]!;
      const raw = reports[i];
      const report = raw instanceof Uint8Array ? parseReport(_text.decode(raw)) : undefined;
      if (report !== undefined) {
        others.set(node, report);
        continue;
      }
      if (raw instanceof Uint8Array) {
        this.#logger.warn("Ignored an unreadable node report", { node });
        continue;
      }
      // Silent for three intervals: gone. Its sessions expire with their TTL.
      this.#fire(["SREM", this.#nodesKey, node]);
      for (const room of this.#others.get(node)?.rooms.keys() ?? []) {
        this.#fire(["SREM", this.#roomKey(room), node]);
      }
      this.#logger.info("Node left the cluster", { node });
    }
    this.#setOthers(others);
    // Listed anew: Redis lost this node (restart, flush) or another node gave it up for
    // dead. Or the connection came back: sessions opened or closed meanwhile were missed.
    if (added === 1 || this.#mustCatchUp) {
      this.#mustCatchUp = false;
      void this.#catchUp();
    }
  }

  #setOthers(others: Map<string, NodeReport>): void {
    const rooms = new Map<string, number>();
    let connections = 0;
    let ips = 0;
    for (const report of others.values()) {
      connections += report.connections;
      ips += report.ipCount;
      for (const [room, n] of report.rooms) rooms.set(room, (rooms.get(room) ?? 0) + n);
    }
    this.#others = others;
    this.#otherRooms = rooms;
    this.#otherConnections = connections;
    this.#otherIps = ips;
    this.#refreshedAt = performance.now();
  }

  /** Whether the cached reports are recent enough to count: the nodes' own expiry. */
  #fresh(): boolean {
    return performance.now() - this.#refreshedAt < this.#reportInterval * 3;
  }

  #liveOthers(): Map<string, NodeReport> {
    return this.#fresh() ? this.#others : new Map();
  }

  // --- losing and regaining Redis ----------------------------------------------

  #stateChanged = (): void => {
    const state = this.state;
    const previous = this.#lastState;
    if (state === previous) return;
    this.#lastState = state;
    if (state === "reconnecting") {
      this.#logger.warn("Lost Redis; serving this node's connections only", { node: this.nodeId });
    } else if (state === "ready" && previous === "reconnecting") {
      this.#logger.info("Redis is back", { node: this.nodeId });
    }
  };

  #recover(): void {
    if (this.#comet === undefined || this.#closing !== undefined) return;
    this.#mustCatchUp = true;
    // A report under way ends at once (its commands failed with the connection) and
    // schedules the next one now.
    this.#schedule(0);
  }

  /** Re-registers every live session and room of this node. */
  #catchUp(): Promise<void> {
    return this.#catchingUp ??= this.#registerAll()
      .catch((err) => this.#logger.warn("Cluster catch-up failed", { error: err }))
      .finally(() => (this.#catchingUp = undefined));
  }

  async #registerAll(): Promise<void> {
    const comet = this.#comet;
    if (comet === undefined) return;
    this.#stats.catchUps++;
    let batch = 0;
    let last: Promise<unknown> | undefined;
    // Awaiting every batch bounds what is queued, and stops early when Redis goes again.
    const step = async (): Promise<boolean> => {
      if (++batch < _BATCH) return true;
      batch = 0;
      await last;
      return this.#routing();
    };
    for (const room of comet.rooms.keys()) {
      if (!this.#routing()) return;
      last = this.#fire(["SADD", this.#roomKey(room), this.nodeId]);
      if (!(await step())) return;
    }
    for (const ch of comet.openSessions()) {
      last = this.#renew(ch) ?? last;
      if (!(await step())) return;
    }
    await last;
    const fields = { node: this.nodeId, connections: comet.connections, rooms: comet.rooms.size };
    // The first one is joining, not news.
    if (this.#stats.catchUps === 1) this.#logger.debug("Registered this node's sessions", fields);
    else this.#logger.info("Registered this node's sessions and rooms anew", fields);
  }

  // --- closing -----------------------------------------------------------------

  #abort = (): void => void this.close();

  async #shutdown(): Promise<void> {
    this.#signal?.removeEventListener("abort", this.#abort);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const comet = this.#comet;
    if (comet !== undefined && comet.observer === this.#observer) comet.observer = undefined;
    if (comet !== undefined && this.#client.state === "ready") {
      const id = this.nodeId;
      const leaving = [
        this.#client.command("SREM", this.#nodesKey, id),
        this.#client.command("DEL", `${this.#prefix}online:${id}`),
        ...[...comet.rooms.keys()].map((room) =>
          this.#client.command("SREM", this.#roomKey(room), id)
        ),
      ];
      // Replies come in order: once these are in, so are the session removals before them.
      await _within(Promise.allSettled(leaving), _LEAVE_TIMEOUT);
    }
    await Promise.all([this.#client.close(), this.#subscriber.close()]);
    await this.#ticking;
    await this.#catchingUp;
    this.#renewed.clear();
    this.#stateChanged();
  }

  // --- helpers -----------------------------------------------------------------

  #keyKey(key: string): string {
    return `${this.#prefix}key:${key}`;
  }

  #roomKey(room: string): string {
    return `${this.#prefix}room:${room}`;
  }

  #hub(): ClusterHub {
    if (this.#comet === undefined) throw new TypeError("Cluster is not attached to a hub yet");
    return this.#comet;
  }
}

function _node(report: NodeReport): ClusterNode {
  const { id, host, tcpPort, wsPort, wssPort, connections, ipCount, updated } = report;
  return { id, host, tcpPort, wsPort, wssPort, connections, ipCount, updated };
}
