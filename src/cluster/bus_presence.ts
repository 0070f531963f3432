/**
 * The other workers' online figures, as a `BusCluster` keeps them
 * from their `hello`, `snap` and `delta` messages, merged so that a query
 * costs one lookup: member counts summed per room, connections summed, and
 * every client IP with how many workers (this one included) hold it.
 *
 * @module
 */
import type { PresenceDelta, PresenceSnapshot } from "./bus_messages.ts";

/** One other worker's figures. */
class _Peer {
  readonly incarnation: string;
  conns = 0;
  rooms = new Map<string, number>();
  ips = new Set<string>();

  constructor(incarnation: string) {
    this.incarnation = incarnation;
  }
}

/**
 * Figures per peer (by worker number) and their sums. A message from a new
 * incarnation of a worker drops the old one's figures first. The IP table
 * also counts this worker's own IPs ({@linkcode PeerFigures.ipAdded}), so the
 * distinct IPs of the process are its size.
 *
 * @example
 * ```ts
 * import { PeerFigures } from "./bus_presence.ts";
 *
 * const peers = new PeerFigures();
 * peers.replace(1, "a1", { conns: 2, rooms: [["live://1", 2]], ips: ["10.0.0.1"] });
 * console.log(peers.roomOnline("live://1"), peers.connections, peers.ipCount); // 2 2 1
 * ```
 */
export class PeerFigures {
  #peers = new Map<number, _Peer>();
  #rooms = new Map<string, number>();
  #ips = new Map<string, number>();
  #conns = 0;

  /** Connections on the other workers. */
  get connections(): number {
    return this.#conns;
  }

  /** Distinct client IPs across the process, this worker's included. */
  get ipCount(): number {
    return this.#ips.size;
  }

  /** Members of each room on the other workers, summed. */
  get rooms(): ReadonlyMap<string, number> {
    return this.#rooms;
  }

  /** The other workers' numbers, ascending. */
  workers(): number[] {
    return [...this.#peers.keys()].sort((a, b) => a - b);
  }

  /** How many other workers are known. */
  get size(): number {
    return this.#peers.size;
  }

  /** Whether worker `w` is known as incarnation `incarnation`. */
  knows(w: number, incarnation: string): boolean {
    return this.#peers.get(w)?.incarnation === incarnation;
  }

  /** Worker `w` is alive as `incarnation`; a new incarnation starts from nothing. */
  touch(w: number, incarnation: string): void {
    this.#peer(w, incarnation);
  }

  /** Members of `room` on the other workers. */
  roomOnline(room: string): number {
    return this.#rooms.get(room) ?? 0;
  }

  /** This worker gained its first connection from `ip`. */
  ipAdded(ip: string): void {
    this.#ips.set(ip, (this.#ips.get(ip) ?? 0) + 1);
  }

  /** This worker lost its last connection from `ip`. */
  ipRemoved(ip: string): void {
    const n = (this.#ips.get(ip) ?? 1) - 1;
    if (n === 0) this.#ips.delete(ip);
    else this.#ips.set(ip, n);
  }

  /** Replaces worker `w`'s figures by its full snapshot. */
  replace(w: number, incarnation: string, snap: PresenceSnapshot): void {
    this.drop(w);
    const ips: [string, boolean][] = snap.ips.map((ip) => [ip, true]);
    this.apply(w, incarnation, { conns: snap.conns, rooms: snap.rooms, ips, keys: [] });
  }

  /** Applies what changed on worker `w`; a new incarnation starts from nothing. */
  apply(w: number, incarnation: string, delta: PresenceDelta): void {
    const peer = this.#peer(w, incarnation);
    this.#conns += delta.conns - peer.conns;
    peer.conns = delta.conns;
    for (const [room, count] of delta.rooms) this.#setRoom(peer, room, count);
    for (const [ip, present] of delta.ips) {
      if (present === peer.ips.has(ip)) continue;
      if (present) {
        peer.ips.add(ip);
        this.ipAdded(ip);
      } else {
        peer.ips.delete(ip);
        this.ipRemoved(ip);
      }
    }
  }

  /** Forgets worker `w` (it left), or only its incarnation `incarnation` when given. */
  drop(w: number, incarnation?: string): boolean {
    const peer = this.#peers.get(w);
    if (peer === undefined) return false;
    if (incarnation !== undefined && peer.incarnation !== incarnation) return false;
    this.#peers.delete(w);
    this.#conns -= peer.conns;
    for (const room of [...peer.rooms.keys()]) this.#setRoom(peer, room, 0);
    for (const ip of peer.ips) this.ipRemoved(ip);
    return true;
  }

  /** Forgets every peer; the IPs of this worker stay counted. */
  clear(): void {
    for (const w of [...this.#peers.keys()]) this.drop(w);
  }

  /** The peer record of `w` as `incarnation`, replacing an older incarnation's. */
  #peer(w: number, incarnation: string): _Peer {
    let peer = this.#peers.get(w);
    if (peer?.incarnation === incarnation) return peer;
    if (peer !== undefined) this.drop(w);
    peer = new _Peer(incarnation);
    this.#peers.set(w, peer);
    return peer;
  }

  #setRoom(peer: _Peer, room: string, count: number): void {
    const before = peer.rooms.get(room) ?? 0;
    if (count === before) return;
    if (count > 0) peer.rooms.set(room, count);
    else peer.rooms.delete(room);
    const sum = (this.#rooms.get(room) ?? 0) + count - before;
    if (sum > 0) this.#rooms.set(room, sum);
    else this.#rooms.delete(room);
  }
}
