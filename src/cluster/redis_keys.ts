/**
 * The names of what a {@linkcode RedisCluster} keeps in Redis, under one
 * prefix (`comet:` by default):
 *
 * - `key:<key>`: the node holding the connection with that key;
 * - `mid:<mid>`: a hash of the user's keys to the nodes holding them;
 * - `room:<room>`: the set of nodes with members of the room;
 * - `online:<node>`: the node's last report; `nodes`: the set of node ids;
 * - `node:<node>` and `all`: the pub/sub channels of one node and of all;
 * - `position:<stream>`: a stream's epoch and last offset (a hash, streams on);
 * - `history:<stream>`: a stream's last pushes (a Redis Stream, entry ids
 *   `<offset>-1`).
 *
 * @module
 */

/**
 * Builds the Redis key and channel names of one cluster.
 *
 * @example
 * ```ts
 * import { RedisKeys } from "./redis_keys.ts";
 * const keys = new RedisKeys("comet:");
 * console.log(keys.room("live://1")); // "comet:room:live://1"
 * ```
 */
export class RedisKeys {
  /** What every name starts with. */
  readonly prefix: string;
  /** The set of the ids of the nodes in the cluster. */
  readonly nodes: string;
  /** The channel every node hears: pushes to all. */
  readonly all: string;

  /** @param prefix What every name starts with, e.g. `comet:`. */
  constructor(prefix: string) {
    this.prefix = prefix;
    this.nodes = `${prefix}nodes`;
    this.all = `${prefix}all`;
  }

  /** The registry entry naming the node that holds the connection with `key`. */
  key(key: string): string {
    return `${this.prefix}key:${key}`;
  }

  /** The registry hash of a user's keys and the nodes holding them. */
  mid(mid: number): string {
    return `${this.prefix}mid:${mid}`;
  }

  /** The set of the nodes with members of `room`. */
  room(room: string): string {
    return `${this.prefix}room:${room}`;
  }

  /** Where `node` writes its report. */
  online(node: string): string {
    return `${this.prefix}online:${node}`;
  }

  /** The channel only `node` hears. */
  node(node: string): string {
    return `${this.prefix}node:${node}`;
  }

  /** The hash of a stream's `epoch` and last offset (`top`); `stream` as `roomStream` names it. */
  position(stream: string): string {
    return `${this.prefix}position:${stream}`;
  }

  /** The Redis Stream of a stream's last pushes, one entry per offset (id `<offset>-1`). */
  history(stream: string): string {
    return `${this.prefix}history:${stream}`;
  }
}
