/**
 * The session registry of a {@linkcode RedisCluster}: which node holds each
 * connection (`key:<key>`), each user's devices (`mid:<mid>`) and each room's
 * members (`room:<room>`), kept as the hub's sessions open, beat and close.
 *
 * @module
 */
import type { Connection } from "../server/connection.ts";
import type { CometObserver } from "../server/comet_observer.ts";
import type { ClusterHub } from "./cluster.ts";
import type { RedisLink } from "./redis_link.ts";
import { within } from "./_util.ts";

/** Connections registered or renewed per round trip while catching up. */
const _BATCH = 512;
/** How long a client's auth or room change may wait for its registry write. */
const _WRITE_TIMEOUT = 1_000;

// Delete a registry entry only while it still names this node: the session may
// have moved to another node since, and that node's entry must stay.
const _DEL_IF_OWNER =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
const _HDEL_IF_OWNER = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then " +
  "return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0";

/**
 * Writes this node's sessions and rooms to Redis as the hub reports them
 * through {@linkcode SessionRegistry.observer}, renews them lazily on
 * heartbeats (at most once per a third of the TTL per connection, no timer
 * per connection), and writes them all anew after Redis lost them.
 *
 * @example
 * ```ts ignore
 * import { SessionRegistry } from "./session_registry.ts";
 * declare const link: import("./redis_link.ts").RedisLink;
 * declare const hub: import("./cluster.ts").ClusterHub;
 * const sessions = new SessionRegistry(link, hub, 960_000);
 * hub.observer = { ...sessions.observer, roomOnline: (room) => hub.roomOnline(room) };
 * ```
 */
export class SessionRegistry {
  #link: RedisLink;
  #hub: ClusterHub;
  #ttl: number;
  #renewed = new Map<Connection, number>();
  #catchingUp: Promise<void> | undefined;

  /**
   * @param link Commands, key names, node id, counters and logger.
   * @param hub The hub whose sessions are registered.
   * @param ttl How long an entry lives without a heartbeat renewing it, in milliseconds.
   */
  constructor(link: RedisLink, hub: ClusterHub, ttl: number) {
    this.#link = link;
    this.#hub = hub;
    this.#ttl = ttl;
  }

  /**
   * Hears the hub's sessions and rooms; the cluster's observer of the hub
   * spreads it and adds the cluster-wide room counts.
   */
  readonly observer: CometObserver = {
    // Written before the client hears it is in, as goim's logic does on Connect: a push
    // sent from anywhere after the auth reply finds the session and its room.
    opening: ({ key, mid, room }) => {
      if (!this.#link.connected) return;
      let last = this.#register(key, mid);
      if (room !== "" && this.#hub.roomOnline(room) === 0) last = this.#roomOpened(room);
      return this.#written(last);
    },
    opened: (ch) => {
      // Not registered (Redis away): the catch-up after the reconnect will.
      if (this.#link.connected) this.#renewed.set(ch, Date.now());
    },
    joining: (_ch, room) => {
      if (!this.#link.connected || this.#hub.roomOnline(room) > 0) return;
      return this.#written(this.#roomOpened(room));
    },
    heartbeat: (ch) => {
      const last = this.#renewed.get(ch);
      // Lazily, so a heartbeat costs Redis nothing most of the time.
      if (last !== undefined && Date.now() - last < this.#ttl / 3) return;
      this.#renew(ch);
    },
    closed: (ch) => this.#unregister(ch),
    roomOpened: (room) => {
      if (this.#link.connected) this.#roomOpened(room);
    },
    roomClosed: (room) => {
      const link = this.#link;
      if (link.connected) link.fire(["SREM", link.keys.room(room), link.nodeId]);
    },
  };

  /** Re-registers every live session and room of this node, once at a time. */
  catchUp(): Promise<void> {
    return this.#catchingUp ??= this.#registerAll()
      .catch((err) => this.#link.logger.warn("Cluster catch-up failed", { error: err }))
      .finally(() => (this.#catchingUp = undefined));
  }

  /** Waits for a catch-up under way, then forgets the renewal times: the cluster is leaving. */
  async close(): Promise<void> {
    await this.#catchingUp;
    this.#renewed.clear();
  }

  #roomOpened(room: string): Promise<unknown> {
    const link = this.#link;
    return link.fire(["SADD", link.keys.room(room), link.nodeId]);
  }

  /** Writes a session's registry entries; resolves with the last reply (replies come in order). */
  #register(key: string, mid: number): Promise<unknown> {
    const link = this.#link;
    const ttl = Math.ceil(this.#ttl);
    const last = link.fire(["SET", link.keys.key(key), link.nodeId, "PX", ttl]);
    if (mid === 0) return last;
    const hash = link.keys.mid(mid);
    link.fire(["HSET", hash, key, link.nodeId]);
    return link.fire(["PEXPIRE", hash, ttl]);
  }

  /** Writes a live connection's entries again, with a fresh TTL. */
  #renew(ch: Connection): Promise<unknown> | undefined {
    // Not now: the catch-up after the reconnect does it.
    if (!this.#link.connected) return undefined;
    this.#renewed.set(ch, Date.now());
    return this.#register(ch.key, ch.mid);
  }

  /** Resolves once `write` is in Redis, failed, or took too long to keep a client waiting. */
  async #written(write: Promise<unknown>): Promise<void> {
    await within(write, _WRITE_TIMEOUT);
  }

  #unregister(ch: Connection): void {
    this.#renewed.delete(ch);
    const link = this.#link;
    if (!link.connected) return;
    // A newer connection with the same key on this hub keeps the entries it shares.
    const holder = this.#hub.channel(ch.key);
    if (holder === undefined) {
      link.fire(["EVAL", _DEL_IF_OWNER, 1, link.keys.key(ch.key), link.nodeId]);
    }
    if (ch.mid !== 0 && holder?.mid !== ch.mid) {
      link.fire(["EVAL", _HDEL_IF_OWNER, 1, link.keys.mid(ch.mid), ch.key, link.nodeId]);
    }
  }

  async #registerAll(): Promise<void> {
    const link = this.#link;
    const hub = this.#hub;
    link.stats.catchUps++;
    let batch = 0;
    let last: Promise<unknown> | undefined;
    // Awaiting every batch bounds what is queued, and stops early when Redis goes again.
    const step = async (): Promise<boolean> => {
      if (++batch < _BATCH) return true;
      batch = 0;
      await last;
      return link.routing;
    };
    for (const room of hub.rooms.keys()) {
      if (!link.routing) return;
      last = this.#roomOpened(room);
      if (!(await step())) return;
    }
    for (const ch of hub.openSessions()) {
      last = this.#renew(ch) ?? last;
      if (!(await step())) return;
    }
    await last;
    const fields = { node: link.nodeId, connections: hub.connections, rooms: hub.rooms.size };
    // The first one is joining, not news.
    if (link.stats.catchUps === 1) link.logger.debug("Registered this node's sessions", fields);
    else link.logger.info("Registered this node's sessions and rooms anew", fields);
  }
}
