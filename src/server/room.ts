import type { Channel } from "./channel.ts";

/**
 * The members of one room within one bucket. Members live in a dense array
 * (each channel remembers its slot) so a room push is a plain loop and a
 * leave is O(1).
 *
 * @example
 * ```ts
 * import { Room } from "./room.ts";
 * const room = new Room("live://1000");
 * console.log(room.size); // 0
 * ```
 */
export class Room {
  /** The room id, e.g. `live://1000`. */
  readonly id: string;
  #members: Channel[] = [];

  /** Creates an empty room. */
  constructor(id: string) {
    this.id = id;
  }

  /** Number of members. */
  get size(): number {
    return this.#members.length;
  }

  /** The members, for iteration; do not mutate. */
  get members(): readonly Channel[] {
    return this.#members;
  }

  /** Adds `channel`; it must not be in a room already. */
  add(channel: Channel): void {
    channel._room = this.id;
    channel._roomSlot = this.#members.length;
    this.#members.push(channel);
  }

  /** Removes `channel` if it is a member. */
  remove(channel: Channel): void {
    const slot = channel._roomSlot;
    if (slot < 0 || this.#members[slot] !== channel) return;
    const last = this.#members.pop()!;
    if (last !== channel) {
      this.#members[slot] = last;
      last._roomSlot = slot;
    }
    channel._room = "";
    channel._roomSlot = -1;
  }

  /**
   * Queues one encoded frame to every member; the bytes are shared, not copied.
   *
   * @returns How many members queued it.
   */
  push(frame: Uint8Array): number {
    const members = this.#members;
    let n = 0;
    // Pushing never removes a member synchronously, so the array is stable here.
    for (let i = 0; i < members.length; i++) if (members[i]!.push(frame)) n++;
    return n;
  }
}
