import type { Backlog } from "./backlog.ts";
import type { SharedFrame } from "./frame_queue.ts";
import type { LogRun, RoomLog, RoomMember } from "./room_member.ts";
import { StreamPositions } from "./stream_positions.ts";

export type { LogRun, RoomLog, RoomMember } from "./room_member.ts";

/**
 * The members of one room within one bucket, and the room's log: the frames
 * pushed to the room that some member has not taken yet.
 *
 * Why a log: a push to a big room used to append the frame to every
 * member's queue, and that per-member, per-frame work (a write into
 * thousands of scattered ring buffers) took more of the server's time than
 * the socket writes did. Now a push appends once; each member keeps a
 * cursor into the log and its writer takes what follows its cursor in its
 * next write. A push only touches members that are idle (to put them in the
 * write line) and, once every queue size of frames or when the log passes
 * its cap in bytes, every member: the room applies the slow-consumer policy
 * to members whose sockets refuse what is written to them while a full
 * queue waits for them, and lets go of the frames every member has taken.
 * Frames waiting for the server's own turn never make a member slow: the
 * room's cap, checked by the hub before a push, bounds them instead.
 *
 * Members live in a dense array (each member remembers its slot) so a leave
 * is O(1).
 *
 * @example
 * ```ts
 * import { Room } from "./room.ts";
 * const room = new Room("live://1000");
 * console.log(room.size); // 0
 * ```
 */
export class Room implements RoomLog {
  /** The room id, e.g. `live://1000`. */
  readonly id: string;
  #members: RoomMember[] = [];
  /** Members still reading the log; the rest are closing and wait to be removed. */
  #reading = 0;
  /** Members whose writers are idle: the next push puts them in the write line. */
  #idle: RoomMember[] = [];
  /**
   * Members that opted in to streams and do not read {@linkcode Room.twin}
   * yet: each takes a push's op-18 frame in its own queue, where its place
   * in the stream drops what its answer covered (see
   * {@linkcode Room.pushStream}). The first op 18 one of them takes past
   * that place moves it to the twin's log.
   */
  #streamed: RoomMember[] = [];
  /**
   * The room's op-18 frames, as a log of their own that settled streamed
   * members read as plain members read this one: a push costs one append,
   * not one queue per member. Made on first use, dropped when empty.
   */
  #twin: Room | undefined;
  /**
   * A twin's place in the room's stream, undefined in a room: every reader
   * moved in holding at most that place, so a stream push at or before it
   * (which a node filling a gap could bring again) is old to all. Every
   * member of a twin reads its log, streamed or not.
   */
  #twinAt: StreamPositions | undefined;
  /** Members whose steps are traced; a push reports to them one by one. */
  #traced = 0;
  /**
   * `#log[i]` is frame number `#base + i`; the first `#dead` slots are
   * frames every member has taken, already let go of.
   */
  #log: (Uint8Array | undefined)[] = [];
  #base = 0;
  #dead = 0;
  /** Bytes of the frames held. */
  #bytes = 0;
  /** Frame number at the last check of the members (see `#check`). */
  #checked = 0;
  /** The smallest queue size of any member that joined. */
  #capacity = Infinity;
  /** The last run of frames encoded, per shared encoding; see {@linkcode Room._run}. */
  #runs: LogRun[] = [];
  #backlog: Backlog | undefined;

  /**
   * Creates an empty room.
   *
   * @param id The room id.
   * @param backlog Where the log's bytes are counted, and its cap. Default: uncounted, no cap.
   */
  constructor(id: string, backlog?: Backlog, isTwin = false) {
    this.id = id;
    this.#backlog = backlog;
    if (isTwin) this.#twinAt = new StreamPositions();
  }

  /** Number of members, its twin's included. */
  get size(): number {
    return this.#members.length + (this.#twin?.size ?? 0);
  }

  /** The log of the room's op-18 frames, when a streamed member reads it. */
  get twin(): Room | undefined {
    return this.#twin;
  }

  /** The members, for iteration; do not mutate. */
  get members(): readonly RoomMember[] {
    return this.#members;
  }

  /** Members that take the room's pushes as op-18 frames. */
  get streamed(): number {
    return this.#streamed.length;
  }

  /** Members that read the log: not streamed, and not closing. */
  get reading(): number {
    return this.#reading;
  }

  /** Frames held for members that have not taken them yet. */
  get backlog(): number {
    return this.#log.length - this.#dead;
  }

  /** Bytes of the frames held for members that have not taken them yet. */
  get bytes(): number {
    return this.#bytes;
  }

  /** @internal The number the next frame pushed gets. */
  get _end(): number {
    return this.#base + this.#log.length;
  }

  /** Adds `member`; it must not be in a room already. */
  add(member: RoomMember): void {
    member._room = this.id;
    member._roomSlot = this.#members.length;
    this.#members.push(member);
    if (member._capacity < this.#capacity) this.#capacity = member._capacity;
    if (member._traced) this.#traced++;
    if (member._streamed && this.#twinAt === undefined) {
      member._streamSlot = this.#streamed.length;
      this.#streamed.push(member);
      return;
    }
    if (!member._reads()) return;
    this.#reading++;
    member._log = this;
    member._cursor = this._end;
    if (!member._busy()) this._park(member);
  }

  /**
   * Removes `member` if it is a member. Room frames it has not taken yet
   * stay queued to it, ahead of anything pushed to it later.
   */
  remove(member: RoomMember): void {
    const slot = member._roomSlot;
    if (slot < 0 || this.#members[slot] !== member) {
      const twin = this.#twin;
      if (twin === undefined) return;
      twin.remove(member);
      if (twin.size === 0) this.#twin = undefined;
      return;
    }
    if (member._log === this) {
      member._catchUp();
      this._detach(member);
    }
    const streamSlot = member._streamSlot;
    if (streamSlot >= 0) {
      const last = this.#streamed.pop()!;
      if (last !== member) {
        this.#streamed[streamSlot] = last;
        last._streamSlot = streamSlot;
      }
      member._streamSlot = -1;
    }
    const last = this.#members.pop()!;
    if (last !== member) {
      this.#members[slot] = last;
      last._roomSlot = slot;
    }
    if (member._traced) this.#traced--;
    member._room = "";
    member._roomSlot = -1;
    if (this.#reading === 0) this.#drop();
  }

  /**
   * Whether a frame of `bytes` fits under the log's cap. When it does not,
   * the members are checked first: slow ones meet the slow-consumer policy
   * and the frames everyone has taken go.
   */
  admits(bytes: number): boolean {
    const cap = this.#backlog?.maxRoomBytes ?? Infinity;
    if (this.#bytes + bytes <= cap) return true;
    this.#check(this._end, false);
    return this.#bytes + bytes <= cap;
  }

  /**
   * Queues one encoded frame to every member; the bytes are shared, not
   * copied. Slow members with a full queue meet the slow-consumer policy.
   * The caller checks {@linkcode Room.admits} first: the log holds what it is given.
   *
   * @returns How many members queued it.
   */
  push(frame: Uint8Array): number {
    // Nobody reads the log (streamed or closing members only): nothing to keep.
    if (this.#reading === 0) return 0;
    if (this.#twinAt !== undefined && !this.#twinAt.admits(frame)) return 0;
    const end = this._end;
    let refused = 0;
    if (end - this.#checked >= this.#capacity) refused = this.#check(end, true);
    this.#log.push(frame);
    this.#bytes += frame.length;
    if (this.#backlog !== undefined) this.#backlog.roomBytes += frame.length;
    const idle = this.#idle;
    if (idle.length > 0) {
      for (let i = 0; i < idle.length; i++) {
        const member = idle[i]!;
        member._idleSlot = -1;
        member._kick();
      }
      idle.length = 0;
    }
    if (this.#traced > 0) {
      for (const member of this.#members) {
        if (member._traced && member._log === this && member._cursor <= end) {
          member._roomPushed(frame);
        }
      }
    }
    return this.#reading - refused;
  }

  /**
   * Queues a push's op-18 frame to every streamed member, in its own queue;
   * one frame and one {@linkcode SharedFrame} for the room's every bucket.
   *
   * @returns How many members queued it.
   */
  pushStream(frame: Uint8Array, shared: SharedFrame): number {
    // A member closed here stays in the array until it leaves, so the array is stable.
    const streamed = this.#streamed;
    let n = 0;
    let settled: RoomMember[] | undefined;
    for (let i = 0; i < streamed.length; i++) {
      const member = streamed[i]!;
      if (!member.pushShared(frame, shared)) continue;
      n++;
      // Taken past its answered place: the twin's later frames are all new to it.
      if (member._settled()) (settled ??= []).push(member);
    }
    if (settled !== undefined) { for (const member of settled) this.#settle(member); }
    return n;
  }

  /**
   * Moves a streamed member to the twin's log, after the frame it just took
   * in its own queue: the twin was given that frame first, so the member's
   * cursor starts past it.
   */
  #settle(member: RoomMember): void {
    this.remove(member);
    (this.#twin ??= new Room(this.id, this.#backlog, true)).add(member);
  }

  /**
   * Applies the slow-consumer policy to each member whose socket has
   * refused writes for the write timeout while a full queue's worth waits
   * for it, then lets go of the frames every member has taken. `due`: the
   * regular check every queue size of frames, whose count starts anew.
   *
   * @returns How many members will not get frame `end`.
   */
  #check(end: number, due: boolean): number {
    let refused = 0;
    // Not past `end`: frame `end` is still to come, and a member that dropped it is at end + 1.
    let taken = end;
    const capacity = this.#capacity;
    const now = performance.now();
    // A member closed here leaves the log but not the array, so the array is stable.
    for (const member of this.#members) {
      if (member._log !== this) continue;
      if (end - member._cursor + member._own >= capacity && member._stuck(now)) {
        member._full(end);
        // Closed: it no longer reads, and `#reading` already counts it out.
        if (member._log !== this) continue;
        refused++;
      }
      if (member._cursor < taken) taken = member._cursor;
    }
    if (due) this.#checked = end;
    this.#trim(taken);
    return refused;
  }

  /**
   * Lets go of frames before number `taken` at once; the array is copied
   * only once they are half of it.
   */
  #trim(taken: number): void {
    const log = this.#log;
    const dead = Math.min(taken - this.#base, log.length);
    if (dead <= this.#dead) return;
    let bytes = 0;
    for (let i = this.#dead; i < dead; i++) {
      bytes += log[i]!.length;
      log[i] = undefined;
    }
    this.#dead = dead;
    this.#forget(bytes);
    if (dead === log.length) {
      log.length = 0;
    } else if (dead * 2 >= log.length) {
      this.#log = log.slice(dead);
    } else {
      return;
    }
    this.#base += dead;
    this.#dead = 0;
  }

  /** Takes `bytes` off the log's count and the hub's. */
  #forget(bytes: number): void {
    this.#bytes -= bytes;
    if (this.#backlog !== undefined) this.#backlog.roomBytes -= bytes;
  }

  /** Every reader has taken every frame (or there are none): the log can go. */
  #drop(): void {
    // Allocates only if something is held: members pushed to alone go idle here often.
    if (this.#runs.length > 0) this.#runs = [];
    if (this.#log.length === 0) return;
    this.#forget(this.#bytes);
    this.#base = this._end;
    this.#log = [];
    this.#dead = 0;
  }

  /**
   * @internal The number after the last of the frames from `from` (before
   * `end`) that fit in `budget` bytes. With `one`, the first frame is taken
   * even if it alone is larger.
   */
  _span(from: number, end: number, budget: number, one = true): number {
    const log = this.#log;
    const base = this.#base;
    let n = from;
    let bytes = 0;
    if (one && n < end) bytes = log[n++ - base]!.length;
    while (n < end) {
      bytes += log[n - base]!.length;
      if (bytes > budget) break;
      n++;
    }
    return n;
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
   * @internal The run a member at `from` takes next (the log ends at `end`)
   * as wires with shared encoding `key` write it, if the last member of that
   * encoding to write a run wrote this one. In a round of writes after a
   * burst of pushes most members take the same run, so one encoding serves
   * them all.
   */
  _run(key: object, from: number, end: number): LogRun | undefined {
    for (const run of this.#runs) {
      if (run.key !== key) continue;
      // A run cut short by the byte budget is what any member at `from` takes, however long the log.
      return run.from === from && (run.full || run.to === end) ? run : undefined;
    }
    return undefined;
  }

  /**
   * @internal Remembers `bytes` as the run of frames `from` to `to` in
   * encoding `key`, taken when the log ended at `end`.
   */
  _keepRun(key: object, from: number, to: number, end: number, bytes: Uint8Array): void {
    const full = to < end;
    for (const run of this.#runs) {
      if (run.key === key) {
        run.from = from;
        run.to = to;
        run.full = full;
        run.bytes = bytes;
        return;
      }
    }
    this.#runs.push({ key, from, to, full, bytes });
  }

  /** @internal Frame number `n`; the caller makes sure the log holds it. */
  _frame(n: number): Uint8Array {
    return this.#log[n - this.#base]!;
  }

  /** @internal `member`'s writer went idle with nothing left: the next push wakes it. */
  _park(member: RoomMember): void {
    if (member._idleSlot >= 0) return;
    member._idleSlot = this.#idle.length;
    this.#idle.push(member);
    // Every reader idle means every frame taken: let go of them now rather than at a check.
    if (this.#idle.length === this.#reading) this.#drop();
  }

  /** @internal `member` stops reading the log: it is closing or leaving. */
  _detach(member: RoomMember): void {
    const slot = member._idleSlot;
    if (slot >= 0) {
      const last = this.#idle.pop()!;
      if (last !== member) {
        this.#idle[slot] = last;
        last._idleSlot = slot;
      }
      member._idleSlot = -1;
    }
    member._log = undefined;
    this.#reading--;
  }
}
