import type { Backlog } from "./backlog.ts";
import type { Channel } from "./channel.ts";
import { Room } from "./room.ts";

/**
 * One shard of the connections, chosen by a hash of the key: key → channel,
 * and this shard's part of every room.
 *
 * @example
 * ```ts
 * import { Bucket } from "./bucket.ts";
 * const bucket = new Bucket();
 * console.log(bucket.size); // 0
 * ```
 */
export class Bucket {
  #channels = new Map<string, Channel>();
  #rooms = new Map<string, Room>();
  #backlog: Backlog | undefined;

  /**
   * Creates an empty bucket.
   *
   * @param backlog Where its rooms count their logs' bytes, and their cap.
   */
  constructor(backlog?: Backlog) {
    this.#backlog = backlog;
  }

  /** Connections in this bucket. */
  get size(): number {
    return this.#channels.size;
  }

  /** The connections, keyed by key. */
  get channels(): ReadonlyMap<string, Channel> {
    return this.#channels;
  }

  /** This bucket's part of each room. */
  get rooms(): ReadonlyMap<string, Room> {
    return this.#rooms;
  }

  /** The connection with `key`, if any. */
  channel(key: string): Channel | undefined {
    return this.#channels.get(key);
  }

  /**
   * Registers `channel` under its key.
   *
   * @returns The channel it replaced, which the caller closes.
   */
  put(channel: Channel): Channel | undefined {
    const old = this.#channels.get(channel.key);
    this.#channels.set(channel.key, channel);
    return old === channel ? undefined : old;
  }

  /**
   * Unregisters `channel`, unless its key now belongs to a newer connection.
   *
   * @returns Whether it was registered.
   */
  delete(channel: Channel): boolean {
    if (this.#channels.get(channel.key) !== channel) return false;
    this.#channels.delete(channel.key);
    return true;
  }

  /** Puts `channel` in room `id` of this bucket; it must be in no room. */
  join(channel: Channel, id: string): void {
    let room = this.#rooms.get(id);
    if (!room) this.#rooms.set(id, room = new Room(id, this.#backlog));
    room.add(channel);
  }

  /** Takes `channel` out of its room; drops the room when it empties. */
  leave(channel: Channel): void {
    const room = this.#rooms.get(channel._room);
    if (!room) return;
    room.remove(channel);
    if (room.size === 0) this.#rooms.delete(room.id);
  }
}
