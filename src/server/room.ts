import type { Channel } from "./channel.ts";

/** A run of log frames encoded once, for every member whose wire shares the encoding. */
interface _Run {
  key: object;
  from: number;
  to: number;
  bytes: Uint8Array;
}

/**
 * The members of one room within one bucket, and the room's log: the frames
 * pushed to the room that some member has not taken yet.
 *
 * Why a log: a push to a big room used to append the frame to every
 * member's queue, and that per-member, per-frame work (a write into
 * thousands of scattered ring buffers) took more of the server's time than
 * the socket writes did. Now a push appends once; each member keeps a
 * cursor into the log and its writer takes everything from its cursor on in
 * its next write. A push only touches members that are idle (to put them in
 * the write line) and, once in a while, every member: when the oldest
 * frame some member may still hold comes close to the queue size, the room
 * checks each member's backlog (the slow-consumer policy) and drops the
 * frames everyone has taken.
 *
 * Members live in a dense array (each channel remembers its slot) so a leave
 * is O(1).
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
  /** Members still reading the log; the rest are closing and wait to be removed. */
  #reading = 0;
  /** Members whose writers are idle: the next push puts them in the write line. */
  #idle: Channel[] = [];
  /** Members whose steps are traced; a push reports to them one by one. */
  #traced = 0;
  /** `#log[i]` is frame number `#base + i`. */
  #log: Uint8Array[] = [];
  #base = 0;
  /**
   * At most the lowest `_cursor - own queue length` of any reading member:
   * no member holds frames from before it, so while `end - #floor` stays
   * below the queue size no member can be full.
   */
  #floor = 0;
  /** The smallest queue size of any member that joined. */
  #capacity = Infinity;
  /** The last run of frames encoded, per shared encoding; see {@linkcode Room._run}. */
  #runs: _Run[] = [];

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

  /** Frames held for members that have not taken them yet. */
  get backlog(): number {
    return this.#log.length;
  }

  /** @internal The number the next frame pushed gets. */
  get _end(): number {
    return this.#base + this.#log.length;
  }

  /** Adds `channel`; it must not be in a room already. */
  add(channel: Channel): void {
    channel._room = this.id;
    channel._roomSlot = this.#members.length;
    this.#members.push(channel);
    if (channel._capacity < this.#capacity) this.#capacity = channel._capacity;
    if (channel._traced) this.#traced++;
    if (!channel._reads()) return;
    this.#reading++;
    channel._log = this;
    channel._cursor = this._end;
    this._lower(channel._cursor - channel.queued);
    if (!channel._busy()) this._park(channel);
  }

  /**
   * Removes `channel` if it is a member. Room frames it has not taken yet
   * stay queued to it, ahead of anything pushed to it later.
   */
  remove(channel: Channel): void {
    const slot = channel._roomSlot;
    if (slot < 0 || this.#members[slot] !== channel) return;
    if (channel._log === this) {
      channel._catchUp();
      this._detach(channel);
    }
    const last = this.#members.pop()!;
    if (last !== channel) {
      this.#members[slot] = last;
      last._roomSlot = slot;
    }
    if (channel._traced) this.#traced--;
    channel._room = "";
    channel._roomSlot = -1;
    if (this.#reading === 0) this.#drop();
  }

  /**
   * Queues one encoded frame to every member; the bytes are shared, not
   * copied. A member whose queue is full meets the slow-consumer policy.
   *
   * @returns How many members queued it.
   */
  push(frame: Uint8Array): number {
    const end = this._end;
    let refused = 0;
    if (end + 1 - this.#floor > this.#capacity) refused = this.#check(end);
    this.#log.push(frame);
    const idle = this.#idle;
    if (idle.length > 0) {
      for (let i = 0; i < idle.length; i++) {
        const channel = idle[i]!;
        channel._idleSlot = -1;
        channel._kick();
      }
      idle.length = 0;
    }
    if (this.#traced > 0) {
      for (const channel of this.#members) {
        if (channel._traced && channel._log === this && channel._cursor <= end) {
          channel._roomPushed(frame);
        }
      }
    }
    return this.#reading - refused;
  }

  /**
   * Applies the slow-consumer policy to each member that holds a full queue
   * before frame `end` is appended, then moves the floor up and drops the
   * frames every member has taken.
   *
   * @returns How many members will not get frame `end`.
   */
  #check(end: number): number {
    let refused = 0;
    let floor = end + 1;
    // Not past `end`: frame `end` is still to come, and a member that dropped it is at end + 1.
    let taken = end;
    const capacity = this.#capacity;
    // A member closed here leaves the log but not the array, so the array is stable.
    for (const channel of this.#members) {
      if (channel._log !== this) continue;
      if (end - channel._cursor + channel._own >= capacity) {
        channel._full(end);
        // Closed: it no longer reads, and `#reading` already counts it out.
        if (channel._log !== this) continue;
        refused++;
      }
      const start = channel._cursor - channel._own;
      if (start < floor) floor = start;
      if (channel._cursor < taken) taken = channel._cursor;
    }
    this.#floor = floor;
    this.#trim(taken);
    return refused;
  }

  /** Forgets frames before number `taken`; copies the rest only once it is half the log. */
  #trim(taken: number): void {
    const dead = taken - this.#base;
    if (dead <= 0) return;
    const log = this.#log;
    if (dead >= log.length) log.length = 0;
    else if (dead * 2 >= log.length) this.#log = log.slice(dead);
    else return;
    this.#base = taken;
  }

  /**
   * Every reader has taken every frame (or there are none): the log can go.
   * The floor stays: a reader may still hold frames of its own queue.
   */
  #drop(): void {
    // Allocates only if something is held: members pushed to alone go idle here often.
    if (this.#runs.length > 0) this.#runs = [];
    if (this.#log.length === 0) return;
    this.#base = this._end;
    this.#log = [];
  }

  /**
   * @internal Copies the references of frames `from` to `to` into `out` at
   * `at`; returns their bytes.
   */
  _copy(from: number, to: number, out: Uint8Array[], at: number): number {
    const log = this.#log;
    let bytes = 0;
    for (let n = from - this.#base, i = at; n < to - this.#base; n++, i++) {
      const frame = log[n]!;
      out[i] = frame;
      bytes += frame.length;
    }
    return bytes;
  }

  /**
   * @internal The bytes of frames `from` to `to` as wires with shared
   * encoding `key` write them, if the last member of that encoding to write
   * a run wrote this one. In a round of writes after a burst of pushes most
   * members take the same run, so one encoding serves them all.
   */
  _run(key: object, from: number, to: number): Uint8Array | undefined {
    for (const run of this.#runs) {
      if (run.key === key) return run.from === from && run.to === to ? run.bytes : undefined;
    }
    return undefined;
  }

  /** @internal Remembers `bytes` as the run of frames `from` to `to` in encoding `key`. */
  _keepRun(key: object, from: number, to: number, bytes: Uint8Array): void {
    for (const run of this.#runs) {
      if (run.key === key) {
        run.from = from;
        run.to = to;
        run.bytes = bytes;
        return;
      }
    }
    this.#runs.push({ key, from, to, bytes });
  }

  /** @internal Frame number `n`; the caller makes sure the log holds it. */
  _frame(n: number): Uint8Array {
    return this.#log[n - this.#base]!;
  }

  /** @internal A member's frames now start at `start`: keeps the floor at or below it. */
  _lower(start: number): void {
    if (start < this.#floor) this.#floor = start;
  }

  /** @internal `channel`'s writer went idle with nothing left: the next push wakes it. */
  _park(channel: Channel): void {
    if (channel._idleSlot >= 0) return;
    channel._idleSlot = this.#idle.length;
    this.#idle.push(channel);
    // Every reader idle means every frame taken: let go of them now rather than at a check.
    if (this.#idle.length === this.#reading) this.#drop();
  }

  /** @internal `channel` stops reading the log: it is closing or leaving. */
  _detach(channel: Channel): void {
    const slot = channel._idleSlot;
    if (slot >= 0) {
      const last = this.#idle.pop()!;
      if (last !== channel) {
        this.#idle[slot] = last;
        last._idleSlot = slot;
      }
      channel._idleSlot = -1;
    }
    channel._log = undefined;
    this.#reading--;
  }
}
