import assert from "node:assert/strict";
import { type Timer, TimerHeap } from "../src/server/timer_heap.ts";
import { mulberry32, randomInt as int } from "./_random.ts";

const SEEDS = [1, 7, 99, 31337, (Date.now() ^ 0x7133) >>> 0];

/** A fake clock for the heap's `now` option. */
class Clock {
  t = 0;
  now = (): number => this.t;
}

/** The reference: a plain list of (value, deadline), sorted on demand. */
class Model {
  entries = new Map<number, number>();
  add(id: number, deadline: number): void {
    this.entries.set(id, deadline);
  }
  remove(id: number): void {
    this.entries.delete(id);
  }
  sorted(): [number, number][] {
    return [...this.entries].sort((a, b) => a[1] - b[1]);
  }
  expire(now: number): [number, number][] {
    const due = this.sorted().filter(([, d]) => d <= now);
    for (const [id] of due) this.entries.delete(id);
    return due;
  }
}

/**
 * Runs random add/reset/resetAt/remove/expire against both the heap and the
 * model. With `ties`, deadlines are small integers so many are equal; the
 * heap may then expire equal deadlines in any order, so only the sequence of
 * deadlines and the set of values are compared.
 */
function runModel(seed: number, ops: number, ties: boolean): number {
  const rand = mulberry32(seed);
  const clock = new Clock();
  const model = new Model();
  const expired: [number, number][] = [];
  using heap = new TimerHeap<number>({
    now: clock.now,
    onExpire: (value, timer) => {
      assert.equal(timer.value, value);
      assert.equal(timer.index, -1, "an expiring timer is already removed");
      expired.push([value, timer.deadline]);
    },
  });
  const timers = new Map<number, Timer<number>>();
  let nextId = 0;
  let expiredTotal = 0;
  const delay = () => ties ? int(rand, 0, 20) : rand() * 1000;
  const pick = () => timers.get(int(rand, 0, nextId - 1));
  for (let step = 0; step < ops; step++) {
    const context = `seed ${seed}, step ${step}`;
    const r = rand();
    if (r < 0.3 || nextId === 0) {
      const id = nextId++;
      const d = delay();
      const timer = heap.add(id, d);
      timers.set(id, timer);
      model.add(id, clock.t + d);
      assert.equal(timer.value, id);
      assert.equal(timer.deadline, clock.t + d, context);
    } else if (r < 0.5) {
      // reset: moves a scheduled timer, or schedules an expired/removed one again.
      const timer = pick()!;
      const d = delay();
      heap.reset(timer, d);
      model.add(timer.value, clock.t + d);
    } else if (r < 0.6) {
      // resetAt, sometimes into the past.
      const timer = pick()!;
      const at = clock.t + (ties ? int(rand, -5, 20) : rand() * 1200 - 200);
      heap.resetAt(timer, at);
      model.add(timer.value, at);
    } else if (r < 0.75) {
      // remove, sometimes of a timer that is not scheduled (a no-op).
      const timer = pick()!;
      heap.remove(timer);
      model.remove(timer.value);
      assert.equal(timer.index, -1, context);
    } else if (r < 0.78) {
      // expire with no time passing.
      expired.length = 0;
      const n = heap.expire(clock.t);
      const want = model.expire(clock.t);
      compare(expired, want, n, ties, context);
      expiredTotal += n;
    } else {
      clock.t += ties ? int(rand, 0, 6) : rand() * 150;
      expired.length = 0;
      // Half the time let the heap read its own clock.
      const n = rand() < 0.5 ? heap.expire(clock.t) : heap.expire();
      const want = model.expire(clock.t);
      compare(expired, want, n, ties, context);
      expiredTotal += n;
    }
    assert.equal(heap.size, model.entries.size, `${context}: size`);
    const head = heap.peek();
    const min = model.sorted()[0];
    if (!min) {
      assert.equal(head, undefined, `${context}: peek of empty`);
    } else {
      assert.ok(head, `${context}: peek`);
      assert.equal(head.deadline, min[1], `${context}: peek deadline`);
      if (!ties) assert.equal(head.value, min[0], `${context}: peek value`);
      assert.equal(head.index, 0, `${context}: head index`);
    }
    for (const [id, timer] of timers) {
      const scheduled = model.entries.has(id);
      assert.equal(timer.index >= 0, scheduled, `${context}: timer ${id} scheduled`);
      if (scheduled) assert.equal(timer.deadline, model.entries.get(id), `${context}: ${id}`);
    }
  }
  // Drain everything left.
  expired.length = 0;
  const n = heap.expire(Infinity);
  compare(expired, model.expire(Infinity), n, ties, `seed ${seed}, final drain`);
  assert.equal(heap.size, 0);
  assert.equal(heap.peek(), undefined);
  return expiredTotal + n;
}

function compare(
  got: [number, number][],
  want: [number, number][],
  count: number,
  ties: boolean,
  context: string,
): void {
  assert.equal(count, got.length, `${context}: expire() return value`);
  if (!ties) {
    assert.deepEqual(got, want, `${context}: expired values in deadline order`);
    return;
  }
  assert.deepEqual(
    got.map(([, d]) => d),
    want.map(([, d]) => d),
    `${context}: expired deadlines in order`,
  );
  assert.deepEqual(
    got.map(([v]) => v).sort((a, b) => a - b),
    want.map(([v]) => v).sort((a, b) => a - b),
    `${context}: expired set`,
  );
}

Deno.test("timer heap matches a sorted-array model under random operations", () => {
  let expired = 0;
  for (const seed of SEEDS) expired += runModel(seed, 4000, false);
  assert.ok(expired > 1000, `expired ${expired}`);
});

Deno.test("timer heap matches the model with many equal deadlines", () => {
  for (const seed of SEEDS) runModel(seed ^ 0x71e5, 3000, true);
});

Deno.test("timer heap expire() is a no-op before the first deadline", () => {
  const clock = new Clock();
  const seen: string[] = [];
  using heap = new TimerHeap<string>({ now: clock.now, onExpire: (v) => seen.push(v) });
  heap.add("a", 10);
  assert.equal(heap.expire(9.999), 0);
  assert.equal(heap.expire(), 0);
  assert.deepEqual(seen, []);
  assert.equal(heap.expire(10), 1, "a deadline equal to now is due");
  assert.deepEqual(seen, ["a"]);
  assert.equal(heap.now(), 0);
  clock.t = 5;
  assert.equal(heap.now(), 5);
});

Deno.test("timer heap re-schedules a removed or expired timer with reset", () => {
  const clock = new Clock();
  const seen: string[] = [];
  using heap = new TimerHeap<string>({ now: clock.now, onExpire: (v) => seen.push(v) });
  const t = heap.add("a", 10);
  heap.remove(t);
  heap.remove(t); // a no-op
  assert.equal(heap.size, 0);
  assert.equal(t.index, -1);
  heap.reset(t, 5);
  assert.equal(heap.size, 1);
  clock.t = 5;
  heap.expire();
  assert.deepEqual(seen, ["a"]);
  heap.reset(t, 1);
  assert.equal(heap.peek(), t);
  assert.equal(t.deadline, 6);
});

Deno.test("timer heap throws RangeError for a negative or NaN delay and a NaN deadline", () => {
  using heap = new TimerHeap<number>({ now: () => 0, onExpire: () => {} });
  assert.throws(() => heap.add(1, -1), RangeError);
  assert.throws(() => heap.add(1, NaN), RangeError);
  const t = heap.add(1, 5);
  assert.throws(() => heap.reset(t, -0.5), RangeError);
  assert.throws(() => heap.resetAt(t, NaN), RangeError);
  assert.equal(t.deadline, 5, "a rejected reset leaves the timer alone");
  assert.equal(heap.size, 1);
  assert.throws(
    () => new TimerHeap({ onExpire: undefined as unknown as () => void }),
    TypeError,
  );
});

Deno.test("timer heap callbacks may add, reset and remove timers while expiring", () => {
  const clock = new Clock();
  const seen: string[] = [];
  const timers: Record<string, Timer<string>> = {};
  using heap = new TimerHeap<string>({
    now: clock.now,
    onExpire: (v) => {
      seen.push(v);
      if (v === "a") {
        heap.remove(timers.c!); // c was due too: it must not fire
        timers.x = heap.add("x", 0); // due now: fires in this same pass
        heap.reset(timers.d!, 100); // pushed out of this pass
      }
    },
  });
  timers.a = heap.add("a", 1);
  timers.b = heap.add("b", 2);
  timers.c = heap.add("c", 3);
  timers.d = heap.add("d", 4);
  timers.e = heap.add("e", 50);
  clock.t = 10;
  assert.equal(heap.expire(), 3);
  assert.deepEqual(seen, ["a", "b", "x"]);
  assert.equal(heap.size, 2);
  assert.equal(heap.peek()?.value, "e");
});

Deno.test("timer heap callback that closes the heap ends the expiry pass", () => {
  const clock = new Clock();
  const seen: number[] = [];
  const heap = new TimerHeap<number>({
    now: clock.now,
    onExpire: (v) => {
      seen.push(v);
      heap.close();
    },
  });
  const timers = [heap.add(1, 1), heap.add(2, 2), heap.add(3, 3)];
  clock.t = 10;
  assert.equal(heap.expire(), 1);
  assert.deepEqual(seen, [1]);
  assert.equal(heap.size, 0);
  for (const t of timers) assert.equal(t.index, -1);
});

Deno.test("timer heap reports a throwing callback to onError and expires the others", () => {
  const clock = new Clock();
  const seen: number[] = [];
  const errors: [unknown, number][] = [];
  using heap = new TimerHeap<number>({
    now: clock.now,
    onExpire: (v) => {
      seen.push(v);
      if (v % 2 === 0) throw new Error(`boom ${v}`);
    },
    onError: (err, v) => errors.push([err, v]),
  });
  for (let i = 1; i <= 6; i++) heap.add(i, i);
  clock.t = 10;
  assert.equal(heap.expire(), 6);
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(errors.map(([e, v]) => [(e as Error).message, v]), [
    ["boom 2", 2],
    ["boom 4", 4],
    ["boom 6", 6],
  ]);
});

Deno.test("timer heap rethrows a callback's error asynchronously by default", async () => {
  const uncaught: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    uncaught.push(e.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    const clock = new Clock();
    const seen: number[] = [];
    using heap = new TimerHeap<number>({
      now: clock.now,
      onExpire: (v) => {
        seen.push(v);
        if (v === 1) throw new Error("boom");
      },
    });
    heap.add(1, 1);
    heap.add(2, 2);
    clock.t = 5;
    assert.equal(heap.expire(), 2, "the throw does not stop the pass");
    assert.deepEqual(seen, [1, 2]);
    assert.equal(uncaught.length, 0, "not thrown synchronously");
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(uncaught.length, 1);
    assert.equal((uncaught[0] as Error).message, "boom");
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});

// ---------------------------------------------------------------------------
// Real time: the one setTimeout

/** Counts setTimeout/clearTimeout calls and live timeouts while `fn` runs. */
type TimeoutId = ReturnType<typeof setTimeout>;
interface TimerSpy {
  sets: number;
  clears: number;
  live: Set<TimeoutId>;
  maxLive: number;
}

async function withTimerSpy<R>(fn: (spy: TimerSpy) => Promise<R>): Promise<R> {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const spy: TimerSpy = { sets: 0, clears: 0, live: new Set(), maxLive: 0 };
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  g.setTimeout = (cb: () => void, ms?: number) => {
    spy.sets++;
    const id: TimeoutId = realSet(() => {
      spy.live.delete(id);
      cb();
    }, ms);
    spy.live.add(id);
    spy.maxLive = Math.max(spy.maxLive, spy.live.size);
    return id;
  };
  g.clearTimeout = (id?: TimeoutId) => {
    if (id !== undefined && spy.live.delete(id)) spy.clears++;
    realClear(id);
  };
  try {
    return await fn(spy);
  } finally {
    g.setTimeout = realSet;
    g.clearTimeout = realClear;
  }
}

Deno.test("timer heap fires short real deadlines in order with one timeout", async () => {
  await withTimerSpy(async (spy) => {
    const fired: { value: number; late: number }[] = [];
    const { promise: done, resolve } = Promise.withResolvers<void>();
    const delays = [50, 20, 45, 30, 25, 40, 35];
    using heap = new TimerHeap<number>({
      onExpire: (value, timer) => {
        fired.push({ value, late: heap.now() - timer.deadline });
        if (fired.length === delays.length) resolve();
      },
    });
    for (const d of delays) heap.add(d, d);
    assert.equal(spy.live.size, 1);
    // Pushing a deadline later does not re-arm the timeout.
    const sets = spy.sets;
    const extra = heap.add(60, 60);
    heap.reset(extra, 55);
    assert.equal(spy.sets, sets, "no new timeout for a later deadline");
    heap.remove(extra);
    await done;
    assert.deepEqual(
      fired.map((f) => f.value),
      [...delays].sort((a, b) => a - b),
    );
    for (const f of fired) assert.ok(f.late >= 0, `fired before its deadline: ${f.late}`);
    assert.equal(spy.maxLive, 1, "never more than one timeout armed");
    assert.equal(heap.size, 0);
    assert.equal(spy.live.size, 0, "nothing armed once empty");
  });
});

Deno.test("timer heap moves its timeout earlier for an earlier deadline", async () => {
  await withTimerSpy(async (spy) => {
    const { promise: done, resolve } = Promise.withResolvers<void>();
    const fired: string[] = [];
    using heap = new TimerHeap<string>({
      onExpire: (v) => {
        fired.push(v);
        if (v === "late") resolve();
      },
    });
    heap.add("late", 40);
    heap.add("early", 10);
    assert.equal(spy.clears, 1, "the later timeout was replaced");
    assert.equal(spy.live.size, 1);
    await done;
    assert.deepEqual(fired, ["early", "late"]);
    assert.equal(spy.maxLive, 1);
  });
});

Deno.test("timer heap close() clears its timeout and every timer", async () => {
  await withTimerSpy(async (spy) => {
    const fired: number[] = [];
    const heap = new TimerHeap<number>({ onExpire: (v) => fired.push(v) });
    const timers = [heap.add(1, 20), heap.add(2, 30), heap.add(3, 10_000)];
    assert.equal(spy.live.size, 1);
    heap.close();
    heap.close(); // idempotent
    assert.equal(spy.live.size, 0);
    assert.equal(heap.size, 0);
    assert.equal(heap.peek(), undefined);
    for (const t of timers) assert.equal(t.index, -1);
    await new Promise((r) => setTimeout(r, 40));
    assert.deepEqual(fired, []);
  });
});

Deno.test("timer heap removing the last timer disarms it", () => {
  const heap = new TimerHeap<number>({ onExpire: () => {} });
  const a = heap.add(1, 10_000);
  const b = heap.add(2, 20_000);
  heap.remove(a);
  heap.remove(b);
  // No close(): the ops sanitizer fails this test if a timeout is left.
  assert.equal(heap.size, 0);
});

Deno.test("timer heap closes when its signal aborts, or at once if already aborted", () => {
  const controller = new AbortController();
  const heap = new TimerHeap<number>({ onExpire: () => {}, signal: controller.signal });
  heap.add(1, 10_000);
  controller.abort();
  assert.equal(heap.size, 0);

  const aborted = new TimerHeap<number>({ onExpire: () => {}, signal: AbortSignal.abort() });
  // The ops sanitizer fails this test if a heap whose signal had already aborted arms a timeout.
  aborted.add(1, 10_000);
});

Deno.test("timer heap disposes with using", () => {
  const fired: number[] = [];
  {
    using heap = new TimerHeap<number>({ onExpire: (v) => fired.push(v) });
    heap.add(1, 10_000);
  }
  assert.deepEqual(fired, []);
});
