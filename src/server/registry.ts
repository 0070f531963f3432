import type { Backlog } from "./backlog.ts";
import { StreamKind } from "../protocol/stream_push.ts";
import { Bucket } from "./bucket.ts";
import { Channel } from "./channel.ts";
import { MAX_ID_LENGTH } from "./defaults.ts";
import type { HubEvents } from "./hub_events.ts";
import type { OnlineTotal, RoomCount } from "./push.ts";

/**
 * Connections by transport, and what waits in their queues; see {@linkcode Registry.figures}.
 *
 * @example
 * ```ts
 * import { Comet } from "./comet.ts";
 * import type { ConnectionFigures } from "./registry.ts";
 *
 * await using comet = new Comet();
 * const figures: ConnectionFigures = comet.connectionFigures();
 * console.log(figures.transports.get("tcp") ?? 0, figures.queue.max); // 0 0
 * ```
 */
export interface ConnectionFigures {
  /** Authenticated connections by transport name (`tcp`, `ws`, `pkg` ...). */
  transports: Map<string, number>;
  /** Frames waiting in connection queues: the sum over all connections, and the largest. */
  queue: { depth: number; max: number };
}

/** FNV-1a over the key's UTF-16 code units: cheap, and spreads UUIDs evenly. */
function _hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Where the hub finds its authenticated connections: by key (sharded into
 * buckets), by user id (mid), by room, with the member count of every room
 * and the connections per client IP. It answers the online queries; the
 * observer hears of rooms opening and closing.
 *
 * @example
 * ```ts
 * import { Backlog } from "./backlog.ts";
 * import { HubEvents } from "./hub_events.ts";
 * import { Registry } from "./registry.ts";
 * import { silentLogger } from "../log.ts";
 *
 * const registry = new Registry(4, new Backlog(), new HubEvents(silentLogger));
 * console.log(registry.onlineTotal()); // { ipCount: 0, connCount: 0 }
 * ```
 */
export class Registry {
  #buckets: Bucket[];
  #events: HubEvents;
  /** One channel per user, or a Set once the user has several devices. */
  #mids = new Map<number, Channel | Set<Channel>>();
  #roomCounts = new Map<string, number>();
  #ipCounts = new Map<string, number>();
  #connections = 0;
  #streamed = 0;

  /**
   * Creates `buckets` empty buckets whose rooms count their bytes in `backlog`.
   *
   * @param events Hears of rooms opening and closing.
   */
  constructor(buckets: number, backlog: Backlog, events: HubEvents) {
    this.#buckets = Array.from({ length: buckets }, () => new Bucket(backlog));
    this.#events = events;
  }

  /** Every bucket. */
  get buckets(): readonly Bucket[] {
    return this.#buckets;
  }

  /** The bucket that holds `key`. */
  bucket(key: string): Bucket {
    return this.#buckets[_hash(key) % this.#buckets.length]!;
  }

  /** The authenticated connection with `key`, if any. */
  channel(key: string): Channel | undefined {
    return this.bucket(key).channel(key);
  }

  /** The connections of user `mid`: none, one, or a Set of several. */
  mid(mid: number): Channel | Set<Channel> | undefined {
    return this.#mids.get(mid);
  }

  /** Authenticated connections. */
  get connections(): number {
    return this.#connections;
  }

  /** Authenticated connections that take op-18 frames (opted in to streams). */
  get streamed(): number {
    return this.#streamed;
  }

  /** Every non-empty room with its member count. */
  get rooms(): ReadonlyMap<string, number> {
    return this.#roomCounts;
  }

  /** Members of `room` online. */
  roomOnline(room: string): number {
    return this.#roomCounts.get(room) ?? 0;
  }

  /** The `limit` fullest rooms whose id starts with `prefix`, fullest first. */
  topRooms(prefix: string, limit: number): RoomCount[] {
    const out: RoomCount[] = [];
    for (const [room, count] of this.#roomCounts) {
      if (room.startsWith(prefix)) out.push({ room, count });
    }
    out.sort((a, b) => b.count - a.count || (a.room < b.room ? -1 : 1));
    return out.slice(0, Math.max(0, limit));
  }

  /** Authenticated connections and distinct client IPs. */
  onlineTotal(): OnlineTotal {
    return { ipCount: this.#ipCounts.size, connCount: this.#connections };
  }

  /** Every registered connection, in bucket order; open or already closing. */
  *sessions(): Generator<Channel, void, undefined> {
    for (const bucket of this.#buckets) yield* bucket.channels.values();
  }

  /** Connections by transport and their queue depths, counted by walking every connection. */
  figures(): ConnectionFigures {
    const transports = new Map<string, number>();
    let depth = 0;
    let max = 0;
    for (const bucket of this.#buckets) {
      for (const ch of bucket.channels.values()) {
        const transport = ch.info.transport;
        transports.set(transport, (transports.get(transport) ?? 0) + 1);
        const queued = ch.queued;
        depth += queued;
        if (queued > max) max = queued;
      }
    }
    return { transports, queue: { depth, max } };
  }

  /**
   * Makes an authenticated `ch` reachable by its key and mid, counts its
   * address `ip`, and puts it in `room` (empty: none). An older connection
   * with the same key is closed; it leaves the indexes in its own cleanup.
   */
  add(ch: Channel, ip: string, room: string): void {
    const old = this.bucket(ch.key).put(ch);
    old?.close("replaced by a new connection with the same key");
    if (ch.mid !== 0) {
      const entry = this.#mids.get(ch.mid);
      if (entry === undefined) this.#mids.set(ch.mid, ch);
      else if (entry instanceof Channel) this.#mids.set(ch.mid, new Set([entry, ch]));
      else entry.add(ch);
    }
    this.#ipCounts.set(ip, (this.#ipCounts.get(ip) ?? 0) + 1);
    this.#connections++;
    if (ch._streamed) this.#streamed++;
    if (room !== "") this.#join(ch, room);
  }

  /** Takes an ended `ch` out of its room and every index it is in. */
  remove(ch: Channel): void {
    this.#leave(ch);
    this.bucket(ch.key).delete(ch);
    if (ch.mid !== 0) {
      const entry = this.#mids.get(ch.mid);
      if (entry === ch) this.#mids.delete(ch.mid);
      else if (entry instanceof Set) {
        entry.delete(ch);
        if (entry.size === 1) this.#mids.set(ch.mid, entry.values().next().value!);
      }
    }
    const ip = ch.info.remoteAddr.hostname;
    const ips = (this.#ipCounts.get(ip) ?? 1) - 1;
    if (ips === 0) this.#ipCounts.delete(ip);
    else this.#ipCounts.set(ip, ips);
    this.#connections--;
    if (ch._streamed) this.#streamed--;
  }

  /**
   * Moves `ch` to `room` (empty: leaves its room).
   *
   * @throws {RangeError} When the room id is longer than 256 characters.
   */
  changeRoom(ch: Channel, room: string): void {
    if (room.length > MAX_ID_LENGTH) {
      throw new RangeError(`Room id is longer than ${MAX_ID_LENGTH} characters: ${room.length}`);
    }
    if (room === ch._room) return;
    this.#leave(ch);
    // The old room's place means nothing in the new room's stream.
    ch._positions?.set(StreamKind.Room, undefined);
    if (room !== "") this.#join(ch, room);
  }

  #join(ch: Channel, room: string): void {
    this.bucket(ch.key).join(ch, room);
    const count = (this.#roomCounts.get(room) ?? 0) + 1;
    this.#roomCounts.set(room, count);
    if (count === 1 && this.#events.observer?.roomOpened) this.#events.notify("roomOpened", room);
  }

  #leave(ch: Channel): void {
    const room = ch._room;
    if (room === "") return;
    this.bucket(ch.key).leave(ch);
    const left = (this.#roomCounts.get(room) ?? 1) - 1;
    if (left !== 0) this.#roomCounts.set(room, left);
    else {
      this.#roomCounts.delete(room);
      if (this.#events.observer?.roomClosed) this.#events.notify("roomClosed", room);
    }
  }
}
