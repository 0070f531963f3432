import assert from "node:assert/strict";
import { MemoryHistory } from "../src/server/memory_history.ts";
import type { StreamAnswer } from "../src/server/streams.ts";

const body = (s: string) => new TextEncoder().encode(s);
const bodies = (a: StreamAnswer) => a.entries.map((e) => new TextDecoder().decode(e.body));

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
  assert.deepEqual(history.figures(), { streams: 1, entries: 2, bytes: 2 });
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
  assert.deepEqual(history.figures(), { streams: 2, entries: 1, bytes: 1 });
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
