import assert from "node:assert/strict";
import { FrameDecoder } from "../src/protocol/decoder.ts";
import type { Frame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { Comet } from "../src/server/comet.ts";
import type { ConnInfo, Wire } from "../src/server/wire.ts";
import { WriteScheduler, type WriteTurn } from "../src/server/write_scheduler.ts";
import { until } from "./_helpers.ts";

/** A writer whose writes complete when the test says so. */
class HeldWriter implements WriteTurn {
  _slot = -1;
  _turnAt = 0;
  turns = 0;
  #scheduler: WriteScheduler | undefined;
  constructor(readonly name: string, readonly log: string[]) {}
  _turn(scheduler: WriteScheduler): void {
    this.turns++;
    this.#scheduler = scheduler;
    this.log.push(this.name);
  }
  /** Completes the write of the current turn. */
  finish(): void {
    this.#scheduler!.done(this);
  }
}

/** Lets queued microtasks run. */
async function tick(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("write scheduler runs turns in arrival order with at most its concurrency in flight", async () => {
  using scheduler = new WriteScheduler({ concurrency: 2 });
  const log: string[] = [];
  const writers = ["a", "b", "c", "d", "e"].map((name) => new HeldWriter(name, log));
  for (const w of writers) scheduler.enqueue(w);
  assert.deepEqual(log, [], "nothing starts before the current task's microtasks have run");
  await tick();
  assert.deepEqual(log, ["a", "b"]);
  assert.equal(scheduler.inFlight, 2);
  assert.equal(scheduler.waiting, 3);
  writers[1]!.finish();
  assert.deepEqual(log, ["a", "b", "c"], "a finished write hands its place to the next in line");
  // A writer with more to send goes to the back of the line.
  scheduler.enqueue(writers[1]!);
  writers[0]!.finish();
  writers[2]!.finish();
  assert.deepEqual(log, ["a", "b", "c", "d", "e"]);
  writers[3]!.finish();
  assert.deepEqual(log, ["a", "b", "c", "d", "e", "b"]);
  writers[4]!.finish();
  writers[1]!.finish();
  assert.equal(scheduler.inFlight, 0);
  assert.equal(scheduler.waiting, 0);
});

Deno.test("write scheduler grows its line past its initial size and keeps the order", async () => {
  using scheduler = new WriteScheduler({ concurrency: 1, burst: Infinity });
  const log: string[] = [];
  const writers = Array.from({ length: 300 }, (_, i) => new HeldWriter(String(i), log));
  for (const w of writers.slice(0, 40)) scheduler.enqueue(w);
  await tick();
  writers[0]!.finish(); // the line wraps around before it grows
  for (const w of writers.slice(40)) scheduler.enqueue(w);
  for (let i = 1; i < 300; i++) writers[i]!.finish();
  assert.deepEqual(log, writers.map((w) => w.name));
});

/** `n` writers whose turn ends at once, each calling `onTurn`. */
function instantWriters(n: number, onTurn: () => void): WriteTurn[] {
  return Array.from({ length: n }, () => ({
    _slot: -1,
    _turnAt: 0,
    _turn(s: WriteScheduler) {
      onTurn();
      s.done(this);
    },
  }));
}

Deno.test("write scheduler survives many turns that end at once", async () => {
  using scheduler = new WriteScheduler({ concurrency: 4, burst: Infinity });
  let turns = 0;
  const instant = instantWriters(50_000, () => turns++);
  for (const w of instant) scheduler.enqueue(w);
  await tick();
  assert.equal(turns, 50_000, "no recursion per turn: the stack holds");
  assert.equal(scheduler.inFlight, 0);
});

Deno.test("write scheduler starts at most a burst of turns before the event loop comes round", async () => {
  using scheduler = new WriteScheduler({ concurrency: 64, burst: 8 });
  let turns = 0;
  const instant = instantWriters(20, () => turns++);
  for (const w of instant) scheduler.enqueue(w);
  let timerRan = false;
  setTimeout(() => void (timerRan = true), 0);
  await tick();
  assert.equal(turns, 8, "eight turns, then the line waits for the event loop");
  assert.equal(scheduler.waiting, 12);
  assert.ok(await until(() => turns === 20, 2_000));
  assert.ok(await until(() => timerRan, 2_000));
});

Deno.test("write scheduler lets a stalled write go of its place after the stall limit", async () => {
  let stalls = 0;
  using scheduler = new WriteScheduler({ concurrency: 1, stallMs: 20, onStall: () => stalls++ });
  const log: string[] = [];
  const stuck = new HeldWriter("stuck", log);
  const next = new HeldWriter("next", log);
  scheduler.enqueue(stuck);
  scheduler.enqueue(next);
  await tick();
  assert.deepEqual(log, ["stuck"]);
  assert.ok(await until(() => log.length === 2, 2_000));
  assert.deepEqual(log, ["stuck", "next"]);
  assert.equal(scheduler.stalled, 1);
  assert.equal(stalls, 1);
  // The stalled write ends late: that must not free a place twice.
  stuck.finish();
  assert.equal(scheduler.inFlight, 1, "only the next writer holds a place");
  next.finish();
  assert.equal(scheduler.inFlight, 0);
});

Deno.test("write scheduler keeps the place of a write that began after its stall timer was armed", async () => {
  let stalls = 0;
  using scheduler = new WriteScheduler({ concurrency: 2, stallMs: 60, onStall: () => stalls++ });
  const log: string[] = [];
  const [stuck, quick, late, last] = ["stuck", "quick", "late", "last"].map((name) =>
    new HeldWriter(name, log)
  );
  for (const w of [stuck!, quick!, late!, last!]) scheduler.enqueue(w);
  await tick();
  // Both places taken and two waiting: the stall timer is armed now.
  await sleep(20);
  quick!.finish();
  assert.deepEqual(log, ["stuck", "quick", "late"]);
  // At the check, "stuck" has written for the whole limit and "late" for a part of it.
  assert.ok(await until(() => stalls === 1, 2_000));
  assert.deepEqual(log, ["stuck", "quick", "late", "last"]);
  assert.equal(scheduler.stalled, 1);
  assert.equal(scheduler.inFlight, 2, "late and last hold the places");
  late!.finish();
  last!.finish();
  stuck!.finish();
  assert.equal(scheduler.inFlight, 0);
});

Deno.test("write scheduler close stops its stall timer and still runs the line", async () => {
  const scheduler = new WriteScheduler({ concurrency: 1, stallMs: 10_000 });
  const log: string[] = [];
  const a = new HeldWriter("a", log);
  const b = new HeldWriter("b", log);
  scheduler.enqueue(a);
  scheduler.enqueue(b);
  await tick();
  // The stall timer is armed now; the op sanitizer fails this test if close leaves it.
  scheduler.close();
  a.finish();
  assert.deepEqual(log, ["a", "b"]);
  b.finish();
});

Deno.test("write scheduler refuses bad options", () => {
  assert.throws(() => new WriteScheduler({ concurrency: 0 }), RangeError);
  assert.throws(() => new WriteScheduler({ concurrency: 1.5 }), RangeError);
  assert.throws(() => new WriteScheduler({ stallMs: 0 }), RangeError);
  assert.throws(() => new WriteScheduler({ stallMs: Number.NaN }), RangeError);
  assert.throws(() => new WriteScheduler({ burst: 0 }), RangeError);
  assert.throws(() => new WriteScheduler({ burst: 2.5 }), RangeError);
});

Deno.test("comet hands its write concurrency and burst to its write line", () => {
  assert.throws(() => new Comet({ writeBurst: 0 }), /Write burst must be a positive integer/);
  assert.throws(() => new Comet({ writeConcurrency: 0 }), RangeError);
});

/** A wire that authenticates into `room`, then either reads every write or never completes one. */
class ScriptWire implements Wire {
  readonly info: ConnInfo = { transport: "script", remoteAddr: { hostname: "127.0.0.1", port: 1 } };
  readonly frames: Frame[] = [];
  #decoder = new FrameDecoder({ maxBody: 1 << 16 });
  #sentAuth = false;
  #closed = false;
  #wake: ((f: Frame | null) => void) | undefined;
  #held: (() => void)[] = [];

  constructor(readonly key: string, readonly room: string, readonly reads: boolean) {}

  read(): Promise<Frame | null> {
    if (this.#closed) return Promise.resolve(null);
    if (!this.#sentAuth) {
      this.#sentAuth = true;
      const body = new TextEncoder().encode(
        JSON.stringify({ mid: 1, key: this.key, room_id: this.room, accepts: [1000] }),
      );
      return Promise.resolve({ ver: 1, op: Op.Auth, seq: 1, body });
    }
    return new Promise((resolve) => (this.#wake = resolve));
  }

  encode(chunks: readonly Uint8Array[], count: number, bytes: number): Uint8Array {
    const out = new Uint8Array(bytes);
    for (let i = 0, at = 0; i < count; at += chunks[i]!.length, i++) out.set(chunks[i]!, at);
    return out;
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Closed"));
    for (const f of this.#decoder.decode(data)) this.frames.push(f);
    // A peer that does not read: the auth reply goes out, then nothing completes.
    if (this.reads || this.frames.length === 1) return Promise.resolve();
    return new Promise((_, reject) => this.#held.push(() => reject(new Error("Closed"))));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.(null);
    for (const fail of this.#held.splice(0)) fail();
  }
}

Deno.test("comet keeps delivering to readers while peers that do not read hold every write place", async () => {
  await using comet = new Comet({ writeConcurrency: 2, closeGrace: 100 });
  const room = "live://stall";
  const stuck = [0, 1, 2].map((i) => new ScriptWire(`stuck${i}`, room, false));
  const reader = new ScriptWire("reader", room, true);
  const sessions = [...stuck, reader].map((w) => comet.serve(w));
  assert.ok(await until(() => comet.connections === 4, 2_000));
  const body = new TextEncoder().encode("hello");
  assert.equal(comet.pushRoom(room, 1000, body), 4);
  assert.ok(await until(() => reader.frames.some((f) => f.op === 1000), 2_000));
  // Three writes never complete; the second push still reaches the reader.
  assert.equal(comet.pushRoom(room, 1000, body), 4);
  assert.ok(await until(() => reader.frames.filter((f) => f.op === 1000).length === 2, 2_000));
  assert.ok(comet.stats.stalledWrites >= 1, "held writes were counted as stalled");
  await sleep(0);
  await comet.close();
  await Promise.all(sessions);
});

Deno.test("write scheduler reports each settled write to its writer", async () => {
  using scheduler = new WriteScheduler({ concurrency: 2 });
  const reports: string[] = [];
  const writer = (name: string) => ({
    _slot: -1,
    _turnAt: 0,
    _turn() {},
    _written(s: WriteScheduler, ok: boolean) {
      assert.equal(s, scheduler);
      reports.push(`${name} ${ok ? "ok" : "failed"}`);
    },
  });
  // More writes than the concurrency, so tickets are both made and reused.
  for (let round = 0; round < 3; round++) {
    scheduler.settle(writer(`a${round}`), Promise.resolve());
    scheduler.settle(writer(`b${round}`), Promise.reject(new Error("reset")));
    scheduler.settle(writer(`c${round}`), Promise.resolve(16));
    await tick();
  }
  assert.deepEqual(reports, [
    "a0 ok",
    "b0 failed",
    "c0 ok",
    "a1 ok",
    "b1 failed",
    "c1 ok",
    "a2 ok",
    "b2 failed",
    "c2 ok",
  ]);
});

Deno.test("write scheduler hands a write's end to the writer that made it, however they finish", async () => {
  using scheduler = new WriteScheduler();
  const ended: string[] = [];
  const resolvers: (() => void)[] = [];
  for (const name of ["first", "second", "third"]) {
    const { promise, resolve } = Promise.withResolvers<void>();
    resolvers.push(resolve);
    scheduler.settle({
      _slot: -1,
      _turnAt: 0,
      _turn() {},
      _written: () => void ended.push(name),
    }, promise);
  }
  resolvers[2]!();
  resolvers[0]!();
  await tick();
  assert.deepEqual(ended, ["third", "first"]);
  resolvers[1]!();
  await tick();
  assert.deepEqual(ended, ["third", "first", "second"]);
});
