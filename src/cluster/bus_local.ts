/**
 * This worker's side of the online figures a `BusCluster` shares: what
 * changed on the hub since the last message (rooms, connections, client
 * IPs, opened keys), heard through the hub's observer and read back from
 * the hub when the change is posted, so that what goes out is the state at
 * that moment.
 *
 * @module
 */
import type { Connection } from "../server/connection.ts";
import type { PresenceDelta, PresenceSnapshot } from "./bus_messages.ts";
import type { PeerFigures } from "./bus_presence.ts";
import type { ClusterHub } from "./cluster.ts";

/** A key opened longer ago than this (at least; at most twice) counts as old. */
const _RECENT_MS = 5_000;

/**
 * Changes of one hub, batched until {@linkcode LocalPresence.take} posts
 * them. A closed connection no longer names its room, so a close makes the
 * next take compare every room with what was last posted; a move to no room
 * (op 12 with an empty room) is not heard at all and waits for
 * {@linkcode LocalPresence.sweep}.
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import { LocalPresence } from "./bus_local.ts";
 * import { PeerFigures } from "./bus_presence.ts";
 *
 * await using comet = new Comet();
 * const local = new LocalPresence(comet, new PeerFigures(), () => {});
 * console.log(local.snapshot()); // { conns: 0, rooms: [], ips: [] }
 * ```
 */
export class LocalPresence {
  #hub: ClusterHub;
  #peers: PeerFigures;
  #changed: () => void;
  /** Authenticated connections per client IP on this hub. */
  #ips = new Map<string, number>();
  /** Room counts as last posted. */
  #posted = new Map<string, number>();
  #rooms = new Set<string>();
  #ipChanges = new Set<string>();
  #keys: [string, number][] = [];
  #sweep = false;
  #connsPosted = 0;
  /** When keys opened lately, in two generations. */
  #recent = new Map<string, number>();
  #older = new Map<string, number>();

  /**
   * @param hub The hub whose connections are counted; those open now are taken in.
   * @param peers Where this hub's client IPs are counted with the other workers'.
   * @param changed Called on every change, so that a post gets scheduled.
   */
  constructor(hub: ClusterHub, peers: PeerFigures, changed: () => void) {
    this.#hub = hub;
    this.#peers = peers;
    this.#changed = changed;
    for (const ch of hub.openSessions()) this.#ipGained(ch.info.remoteAddr.hostname);
    for (const [room, n] of hub.rooms) this.#posted.set(room, n);
    this.#connsPosted = hub.connections;
  }

  /** Whether anything waits to be posted. */
  get pending(): boolean {
    return this.#sweep || this.#rooms.size > 0 || this.#ipChanges.size > 0 ||
      this.#keys.length > 0 || this.#connsPosted !== this.#hub.connections;
  }

  /** A connection authenticated. */
  opened(ch: Connection): void {
    this.#ipGained(ch.info.remoteAddr.hostname);
    if (ch.room !== "") this.#rooms.add(ch.room);
    // Fractional: two workers rarely open the same key in the same millisecond.
    const at = performance.timeOrigin + performance.now();
    this.#recent.set(ch.key, at);
    this.#keys.push([ch.key, at]);
    this.#changed();
  }

  /** A connection ended; its room is no longer known, so every room is compared. */
  closed(ch: Connection): void {
    const ip = ch.info.remoteAddr.hostname;
    const n = (this.#ips.get(ip) ?? 1) - 1;
    if (n > 0) this.#ips.set(ip, n);
    else {
      this.#ips.delete(ip);
      this.#peers.ipRemoved(ip);
      this.#ipChanges.add(ip);
    }
    this.#sweep = true;
    this.#changed();
  }

  /** A connection is about to move from its room to `room`. */
  joining(ch: Connection, room: string): void {
    if (ch.room !== "") this.#rooms.add(ch.room);
    this.#rooms.add(room);
    this.#changed();
  }

  /** A room's count changed in a way no other hook tells of. */
  room(room: string): void {
    this.#rooms.add(room);
    this.#changed();
  }

  /** When `key` opened here lately; -Infinity when not lately (or never). */
  openedAt(key: string): number {
    return this.#recent.get(key) ?? this.#older.get(key) ?? -Infinity;
  }

  /** Compares every room at the next take and ages the opened keys; run about once a second. */
  sweep(now: number): void {
    const oldest = this.#recent.values().next();
    if (!oldest.done && now - oldest.value > _RECENT_MS) {
      this.#older = this.#recent;
      this.#recent = new Map();
    }
    this.#sweep = true;
    this.#changed();
  }

  /** This hub's whole presence. */
  snapshot(): PresenceSnapshot {
    return {
      conns: this.#hub.connections,
      rooms: [...this.#hub.rooms],
      ips: [...this.#ips.keys()],
    };
  }

  /** What changed since the last take, as it is now; undefined when nothing did. */
  take(): PresenceDelta | undefined {
    // A turn that only took pushes (the bus flushes every such turn) allocates nothing here.
    if (!this.pending) return undefined;
    const hub = this.#hub;
    const live = hub.rooms;
    const posted = this.#posted;
    if (this.#sweep) {
      this.#sweep = false;
      for (const [room, n] of live) if (posted.get(room) !== n) this.#rooms.add(room);
      for (const room of posted.keys()) if (!live.has(room)) this.#rooms.add(room);
    }
    const rooms: [string, number][] = [];
    for (const room of this.#rooms) {
      const n = live.get(room) ?? 0;
      if ((posted.get(room) ?? 0) === n) continue;
      rooms.push([room, n]);
      if (n > 0) posted.set(room, n);
      else posted.delete(room);
    }
    this.#rooms.clear();
    const ips: [string, boolean][] = [];
    for (const ip of this.#ipChanges) ips.push([ip, this.#ips.has(ip)]);
    this.#ipChanges.clear();
    const keys = this.#keys;
    this.#keys = [];
    const conns = hub.connections;
    if (
      rooms.length === 0 && ips.length === 0 && keys.length === 0 && conns === this.#connsPosted
    ) {
      return undefined;
    }
    this.#connsPosted = conns;
    return { conns, rooms, ips, keys };
  }

  /** Forgets this hub's IPs in the shared table: the cluster is leaving. */
  close(): void {
    for (const ip of this.#ips.keys()) this.#peers.ipRemoved(ip);
    this.#ips.clear();
  }

  #ipGained(ip: string): void {
    const n = this.#ips.get(ip) ?? 0;
    this.#ips.set(ip, n + 1);
    if (n === 0) {
      this.#peers.ipAdded(ip);
      this.#ipChanges.add(ip);
    }
  }
}
