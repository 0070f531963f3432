import assert from "node:assert/strict";
import { MemoryHistory } from "../src/server/memory_history.ts";
import type { HistoryFigures, StreamAnswer } from "../src/server/streams.ts";
import { mulberry32 } from "./_random.ts";

const body = (s: string) => new TextEncoder().encode(s);
const bodies = (a: StreamAnswer) => a.entries.map((e) => new TextDecoder().decode(e.body));
/** The streams, pushes and bytes a history reports, without its memory account. */
const kept = ({ streams, entries, bytes }: HistoryFigures) => ({ streams, entries, bytes });

/** A history on a clock the test moves. */
function clocked(size: number, ttl: number, positionTtl?: number) {
  const clock = { now: 1_000_000 };
  const history = new MemoryHistory({
    size,
    ttl,
    now: () => clock.now,
    ...(positionTtl !== undefined && { positionTtl }),
  });
  return { clock, history };
}

Deno.test("offsets start at 1 and go up by one per stream, each with its epoch", () => {
  const { history } = clocked(10, 60_000);
  const a1 = history.append("room:a", 1000, body("1"));
  const a2 = history.append("room:a", 1000, body("2"));
  const b1 = history.append("room:b", 1000, body("1"));
  assert.deepEqual([a1.offset, a2.offset, b1.offset], [1, 2, 1]);
  assert.equal(a1.epoch, a2.epoch);
  assert.ok(a1.epoch >= 1 && a1.epoch <= 0xffffffff);
});

Deno.test("a position inside the window gets everything after it, in order", () => {
  const { history } = clocked(10, 60_000);
  const { epoch } = history.append("all", 1000, body("a"));
  history.append("all", 1001, body("b"));
  history.append("all", 1002, body("c"));
  const [answer] = history.answer([{ stream: "all", from: { epoch, offset: 1 } }]);
  assert.equal(answer!.recovered, true);
  assert.equal(answer!.offset, 3);
  assert.deepEqual(answer!.entries.map((e) => [e.offset, e.op]), [[2, 1001], [3, 1002]]);
  const [none] = history.answer([{ stream: "all", from: { epoch, offset: 3 } }]);
  assert.deepEqual([none!.recovered, none!.entries.length], [true, 0]);
});

Deno.test("the window keeps the last size pushes", () => {
  const { history } = clocked(2, 60_000);
  let epoch = 0;
  for (const s of ["a", "b", "c"]) epoch = history.append("all", 1000, body(s)).epoch;
  const [inside] = history.answer([{ stream: "all", from: { epoch, offset: 1 } }]);
  assert.deepEqual(bodies(inside!), ["b", "c"]);
  const [outside] = history.answer([{ stream: "all", from: { epoch, offset: 0 } }]);
  assert.deepEqual([outside!.recovered, outside!.reason, outside!.entries.length], [
    false,
    "window",
    0,
  ]);
  assert.deepEqual(kept(history.figures()), { streams: 1, entries: 2, bytes: 2 });
});

Deno.test("the window keeps pushes for ttl milliseconds", () => {
  const { clock, history } = clocked(10, 1000);
  const { epoch } = history.append("all", 1000, body("old"));
  clock.now += 600;
  history.append("all", 1000, body("new"));
  clock.now += 500;
  const [answer] = history.answer([{ stream: "all", from: { epoch, offset: 0 } }]);
  assert.equal(answer!.reason, "window");
  const [kept] = history.answer([{ stream: "all", from: { epoch, offset: 1 } }]);
  assert.deepEqual(bodies(kept!), ["new"]);
});

Deno.test("another epoch, or an offset past the top, is not this stream's", () => {
  const { history } = clocked(10, 60_000);
  const { epoch } = history.append("mid:7", 1000, body("x"));
  const [other] = history.answer([{ stream: "mid:7", from: { epoch: epoch ^ 1 || 2, offset: 0 } }]);
  assert.deepEqual([other!.recovered, other!.reason], [false, "epoch"]);
  const [past] = history.answer([{ stream: "mid:7", from: { epoch, offset: 5 } }]);
  assert.deepEqual([past!.recovered, past!.reason, past!.offset], [false, "epoch", 1]);
  const [never] = history.answer([{ stream: "mid:7", from: { epoch: 0, offset: 0 } }]);
  assert.equal(never!.reason, "epoch");
});

Deno.test("a stream keeps its position after its pushes expire", () => {
  const { clock, history } = clocked(10, 1000);
  const first = history.append("room:a", 1000, body("x"));
  clock.now += 5000;
  const [answer] = history.answer([{ stream: "room:a", from: first }]);
  assert.deepEqual([answer!.epoch, answer!.offset, answer!.recovered], [first.epoch, 1, true]);
  assert.equal(history.figures().entries, 0);
  assert.equal(history.append("room:a", 1000, body("y")).offset, 2);
});

Deno.test("the sweep lets go of expired pushes and, past the position ttl, of streams", () => {
  const { clock, history } = clocked(10, 1000, 10_000);
  const old = history.append("room:idle", 1000, body("x"));
  history.append("room:busy", 1000, body("y"));
  clock.now += 2000;
  history.append("room:busy", 1000, body("z"));
  assert.deepEqual(kept(history.figures()), { streams: 2, entries: 1, bytes: 1 });
  clock.now += 20_000;
  history.append("room:busy", 1000, body("w"));
  assert.equal(history.figures().streams, 1);
  const [again] = history.answer([{ stream: "room:idle", from: old }]);
  assert.notEqual(again!.epoch, old.epoch, "a stream forgotten starts under a new epoch");
  assert.equal(again!.reason, "epoch");
});

Deno.test("a history refuses a size below 1 and a ttl that is not positive", () => {
  assert.throws(() => new MemoryHistory({ size: 0, ttl: 1000 }), RangeError);
  assert.throws(() => new MemoryHistory({ size: 1, ttl: 0 }), RangeError);
  assert.throws(() => new MemoryHistory({ size: 1, ttl: 1000, positionTtl: 10 }), RangeError);
});

/** A history with a memory cap on a clock the test moves, and the warnings it gave. */
function capped(memory: number, size = 100) {
  const clock = { now: 1_000_000 };
  const warnings: Record<string, unknown>[] = [];
  const history = new MemoryHistory({
    size,
    ttl: 60_000,
    memory,
    now: () => clock.now,
    warn: (_message, fields) => warnings.push(fields),
  });
  return { clock, history, warnings };
}

const kb = (tag: string) => body(tag.padEnd(1000, "."));

Deno.test("past its memory cap the stalest streams lose their pushes, and are refused for the window", () => {
  const { history, warnings } = capped(8_000);
  const a = [1, 2, 3].map(() => history.append("room:a", 1000, kb("a")));
  const b = [1, 2, 3].map(() => history.append("room:b", 1000, kb("b")));
  assert.equal(history.figures().evictedPushes, 0);
  // Room c's pushes pass the cap: room a, used least recently, pays first, then b if need be.
  for (let i = 0; i < 3; i++) history.append("room:c", 1000, kb("c"));
  const figures = history.figures();
  assert.ok(figures.held! <= 8_000, `held ${figures.held}`);
  assert.equal(figures.streams, 3, "positions are kept while pushes can go");
  assert.equal(figures.evictedPushes, 3);
  const [behind, atTop, other] = history.answer([
    { stream: "room:a", from: a[0]! },
    { stream: "room:a", from: a[2]! },
    { stream: "room:b", from: b[0]! },
  ]);
  assert.deepEqual([behind!.recovered, behind!.reason, behind!.entries.length], [
    false,
    "window",
    0,
  ]);
  assert.deepEqual(
    [atTop!.recovered, atTop!.entries.length],
    [true, 0],
    "nothing missed, nothing lost",
  );
  assert.deepEqual(bodies(other!).map((s) => s[0]), ["b", "b"]);
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.pushes, 3);
});

Deno.test("one stream alone past the cap keeps its newest pushes, never part of a replay", () => {
  const { history } = capped(5_000);
  const stamps = Array.from({ length: 10 }, (_, i) => history.append("mid:1", 1000, kb(`${i}`)));
  const figures = history.figures();
  assert.ok(figures.held! <= 5_000, `held ${figures.held}`);
  assert.ok(figures.entries >= 1 && figures.entries < 10, `entries ${figures.entries}`);
  const [old, recent] = history.answer([
    { stream: "mid:1", from: stamps[0]! },
    { stream: "mid:1", from: stamps[8]! },
  ]);
  assert.equal(old!.reason, "window");
  assert.deepEqual(bodies(recent!).map((s) => s[0]), ["9"]);
});

Deno.test("when positions alone pass the cap the stalest are forgotten and start under a new epoch", () => {
  const { history } = capped(4_000);
  const [first] = history.answer([{ stream: "mid:0" }]);
  for (let i = 1; i < 100; i++) history.answer([{ stream: `mid:${i}` }]);
  const figures = history.figures();
  assert.ok(figures.held! <= 4_000, `held ${figures.held}`);
  assert.ok(figures.evictedStreams! > 0 && figures.streams < 100, JSON.stringify(figures));
  const [again] = history.answer([{ stream: "mid:0", from: first! }]);
  assert.equal(again!.reason, "epoch");
  assert.notEqual(again!.epoch, first!.epoch);
});

Deno.test("eviction is told once, then at most once a minute with what it dropped since", () => {
  const { clock, history, warnings } = capped(3_000);
  for (let i = 0; i < 20; i++) history.append(`room:${i}`, 1000, kb("x"));
  assert.equal(warnings.length, 1);
  clock.now += 61_000;
  for (let i = 0; i < 5; i++) history.append(`room:${i}`, 1000, kb("x"));
  assert.equal(warnings.length, 2);
  assert.equal(warnings[1]!.memory, 3_000);
  assert.ok((warnings[1]!.pushes as number) > 0);
});

Deno.test("without a cap nothing is evicted, and a cap must be positive", () => {
  const { history } = clocked(1000, 60_000);
  for (let i = 0; i < 500; i++) history.append(`mid:${i}`, 1000, kb("x"));
  assert.deepEqual(
    [history.figures().entries, history.figures().evictedPushes, history.figures().evictedStreams],
    [500, 0, 0],
  );
  for (const memory of [0, -1, NaN]) {
    assert.throws(() => new MemoryHistory({ size: 1, ttl: 1000, memory }), RangeError);
  }
});

Deno.test("a long random run keeps held true to what is kept, under the cap, and never replays in part", () => {
  // Names of one length, so that held = bytes + 96 a push + (224 + length) a stream, exactly.
  const names = Array.from({ length: 40 }, (_, i) => `s:${String(i).padStart(3, "0")}`);
  const perStream = 224 + names[0]!.length;
  let evicted = 0;
  // Probes whose sums were compared: one that evicted (it made streams anew) is not.
  let compared = 0;
  for (let seed = 1; seed <= 12; seed++) {
    const random = mulberry32(seed);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
    const memory = pick([Infinity, 6_000, 12_000, 30_000, 80_000]);
    const size = 1 + Math.floor(random() * 12);
    const clock = { now: 1_000_000 };
    const history = new MemoryHistory({
      size,
      ttl: 5_000,
      positionTtl: 20_000,
      memory,
      now: () => clock.now,
    });
    // What the test knows of each stream: its epoch, its top, and every body of that epoch.
    const model = new Map<string, { epoch: number; top: number; bodies: Uint8Array[] }>();
    const learn = (name: string, epoch: number, top: number) => {
      const m = model.get(name);
      if (m === undefined || m.epoch !== epoch) {
        assert.equal(top, 0, `${name} starts a new epoch at 0 (seed ${seed})`);
        model.set(name, { epoch, top, bodies: [] });
      } else assert.equal(top, m.top, `${name}'s top (seed ${seed})`);
    };
    const check = (answer: StreamAnswer, from: { epoch: number; offset: number } | undefined) => {
      const m = model.get(answer.stream)!;
      if (from === undefined) return assert.equal(answer.recovered, undefined);
      if (from.epoch !== answer.epoch || from.offset > answer.offset) {
        return assert.deepEqual([answer.recovered, answer.reason], [false, "epoch"]);
      }
      if (answer.recovered === false) {
        assert.equal(answer.reason, "window");
        return assert.equal(answer.entries.length, 0);
      }
      const want = m.bodies.slice(from.offset).map((b, i) => [from.offset + 1 + i, b]);
      assert.deepEqual(answer.entries.map((e) => [e.offset, e.body]), want, `seed ${seed}`);
    };
    const account = () => {
      const f = history.figures();
      assert.equal(f.held, f.bytes + 96 * f.entries + perStream * f.streams, `seed ${seed}`);
      assert.ok(f.entries >= 0 && f.bytes >= 0, JSON.stringify(f));
      // One stream with one push (at most 1500 bytes) is well under every cap here.
      assert.ok(f.held! <= memory, `held ${f.held} over ${memory} (seed ${seed})`);
      return f;
    };
    const query = (name: string) => {
      const m = model.get(name);
      const r = random();
      if (m === undefined || r < 0.2) return { stream: name };
      if (r < 0.3) return { stream: name, from: { epoch: m.epoch ^ 1, offset: 0 } };
      return { stream: name, from: { epoch: m.epoch, offset: Math.floor(random() * (m.top + 2)) } };
    };
    /** Asks every known stream from its top down past its window, and sums what it keeps. */
    const probe = () => {
      const before = history.figures();
      const queries = [...model].flatMap(([stream, m]) =>
        Array.from({ length: Math.min(m.top, size + 1) + 1 }, (_, i) => ({
          stream,
          from: { epoch: m.epoch, offset: m.top - i },
        }))
      );
      const answers = history.answer(queries);
      // Per stream: the pushes kept (the longest replay), their bytes, and whether a window was refused yet.
      const kept = new Map<string, { n: number; bytes: number; refused: boolean }>();
      answers.forEach((answer, i) => {
        const from = queries[i]!.from;
        const k = kept.get(answer.stream) ?? { n: 0, bytes: 0, refused: false };
        kept.set(answer.stream, k);
        if (answer.epoch !== from.epoch) return learn(answer.stream, answer.epoch, answer.offset);
        check(answer, from);
        if (answer.recovered) {
          assert.ok(!k.refused, `recovered below a refused window (seed ${seed})`);
          k.n = answer.entries.length;
          k.bytes = answer.entries.reduce((sum, e) => sum + e.body.length, 0);
        } else k.refused = true;
      });
      const after = account();
      // A probe that made streams anew may have evicted after answering: its sums are stale.
      if (after.evictedPushes !== before.evictedPushes) return;
      if (after.evictedStreams !== before.evictedStreams) return;
      compared++;
      let n = 0;
      let bytes = 0;
      for (const k of kept.values()) {
        assert.ok(k.n <= size, `kept ${k.n} past size ${size}`);
        n += k.n;
        bytes += k.bytes;
      }
      assert.deepEqual(
        [after.streams, after.entries, after.bytes],
        [model.size, n, bytes],
        `seed ${seed}`,
      );
    };
    for (let step = 0; step < 3000; step++) {
      const r = random();
      if (r < 0.55) {
        const name = pick(names);
        const b = new Uint8Array(Math.floor(random() * 1500)).fill(step & 0xff);
        const stamp = history.append(name, 1000, b);
        const m = model.get(name);
        if (m === undefined || m.epoch !== stamp.epoch) {
          assert.equal(stamp.offset, 1, `a new epoch starts at 1 (seed ${seed})`);
          model.set(name, { epoch: stamp.epoch, top: 1, bodies: [b] });
        } else {
          assert.equal(stamp.offset, m.top + 1);
          m.top++;
          m.bodies.push(b);
        }
        // The push just made is kept whatever was evicted for it (asking again moves nothing).
        const from = { epoch: stamp.epoch, offset: stamp.offset - 1 };
        const [again] = history.answer([{ stream: name, from }]);
        assert.deepEqual(again!.entries.map((e) => e.body), [b], `seed ${seed}`);
      } else if (r < 0.85) {
        const queries = Array.from(
          { length: 1 + Math.floor(random() * 3) },
          () => query(pick(names)),
        );
        const answers = history.answer(queries);
        answers.forEach((answer, i) => {
          learn(answer.stream, answer.epoch, answer.offset);
          check(answer, queries[i]!.from);
        });
      } else if (r < 0.97) {
        clock.now += Math.floor(random() * 800);
      } else {
        clock.now += pick([5_000, 20_000]);
      }
      account();
      if (step % 250 === 249) probe();
    }
    probe();
    evicted += history.figures().evictedPushes! + history.figures().evictedStreams!;
  }
  assert.ok(evicted > 0 && compared > 0, `evicted ${evicted}, compared ${compared}`);
});

Deno.test("a crowd of streams gone quiet is let go over a few sweeps, none before its time", () => {
  const { clock, history } = clocked(10, 1_000, 5_000);
  for (let i = 0; i < 25_000; i++) history.append(`mid:${i}`, 1000, body("x"));
  // Past the ttl: the pushes go (a sweep moves a bounded number of streams at a time).
  const sweeps = (n: number) => {
    for (let i = 0; i < n; i++) {
      clock.now += 1_000;
      history.append("room:busy", 1000, body("y"));
    }
  };
  sweeps(4);
  assert.equal(kept(history.figures()).entries, 1, "only the busy room's last push");
  assert.equal(history.figures().streams, 25_001, "every position is kept within its ttl");
  sweeps(3);
  assert.equal(history.figures().streams, 1, "past the position ttl, all but the busy room go");
});
