import assert from "node:assert/strict";
import { BoundedQueue, QueueFullError } from "../src/server/queue.ts";
import { mulberry32 } from "./_random.ts";

const SEEDS = [1, 3, 1234, 0xdecaf, (Date.now() ^ 0x0911) >>> 0];

/** True when `p` has settled after the current microtasks ran. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return done;
}

Deno.test("queue constructor throws RangeError for a bad capacity", () => {
  for (const capacity of [0, -1, 1.5, NaN, Infinity, 2 ** 53]) {
    assert.throws(() => new BoundedQueue(capacity), RangeError, `capacity ${capacity}`);
  }
  assert.equal(new BoundedQueue(1).capacity, 1);
  assert.equal(new BoundedQueue(2 ** 53 - 1).capacity, 2 ** 53 - 1);
});

Deno.test("queue offer refuses once the queue holds its capacity", () => {
  for (const capacity of [1, 2, 3, 4, 5, 7, 8, 9, 100]) {
    const q = new BoundedQueue<number>(capacity);
    for (let i = 0; i < capacity; i++) assert.equal(q.offer(i), true, `cap ${capacity}, ${i}`);
    assert.equal(q.length, capacity);
    assert.equal(q.offer(-1), false);
    assert.equal(q.length, capacity);
    // Room again after one shift.
    assert.equal(q.shift(), 0);
    assert.equal(q.offer(capacity), true);
    assert.equal(q.offer(-1), false);
    const out: number[] = [];
    while (q.length > 0) out.push(q.shift()!);
    assert.deepEqual(out, Array.from({ length: capacity }, (_, i) => i + 1));
  }
});

Deno.test("queue push throws QueueFullError when full and TypeError when closed", () => {
  const q = new BoundedQueue<string>(2);
  q.push("a");
  q.push("b");
  assert.throws(() => q.push("c"), (e) => {
    assert.ok(e instanceof QueueFullError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, "QueueFullError");
    assert.match(e.message, /2/);
    return true;
  });
  assert.equal(q.length, 2);
  q.close();
  assert.throws(() => q.push("d"), TypeError);
  assert.equal(q.length, 2);
});

Deno.test("queue force exceeds the capacity but not a closed queue", () => {
  const q = new BoundedQueue<number>(2);
  q.offer(1);
  q.offer(2);
  assert.equal(q.force(3), true);
  assert.equal(q.force(4), true);
  assert.equal(q.length, 4);
  assert.equal(q.offer(5), false, "still over capacity");
  q.close();
  assert.equal(q.force(6), false);
  assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift(), q.shift()], [
    1,
    2,
    3,
    4,
    undefined,
  ]);
});

Deno.test("queue shift of an empty queue returns undefined", () => {
  const q = new BoundedQueue<number>(3);
  assert.equal(q.shift(), undefined);
  q.offer(0);
  assert.equal(q.shift(), 0, "falsy items come back as they were");
  assert.equal(q.shift(), undefined);
  assert.equal(q.length, 0);
});

Deno.test("queue clear drops every item and the ring still works after", () => {
  const q = new BoundedQueue<number>(10);
  for (let i = 0; i < 3; i++) q.offer(i);
  q.shift();
  for (let i = 3; i < 9; i++) q.offer(i);
  assert.equal(q.clear(), 8);
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
  assert.equal(q.clear(), 0);
  for (let i = 0; i < 10; i++) assert.ok(q.offer(i));
  assert.equal(q.offer(10), false);
  for (let i = 0; i < 10; i++) assert.equal(q.shift(), i);
});

Deno.test("queue release lets go of storage only while empty and says whether it holds none", () => {
  const q = new BoundedQueue<number>(64);
  assert.equal(q.release(), true, "nothing allocated yet");
  q.offer(1);
  assert.equal(q.release(), false, "an item is queued");
  q.shift();
  assert.equal(q.release(true), true, "a ring of its first size goes even with keepGrown");
  for (let i = 0; i < 10; i++) q.offer(i);
  for (let i = 0; i < 10; i++) q.shift();
  assert.equal(q.release(true), false, "a grown ring stays with keepGrown");
  assert.equal(q.release(), true);
  q.offer(7);
  assert.equal(q.shift(), 7, "the next item allocates anew");
});

Deno.test("queue keeps FIFO order across ring growth and wrap-around against a model", () => {
  for (const seed of SEEDS) {
    const rand = mulberry32(seed);
    for (const capacity of [1, 2, 3, 4, 5, 6, 8, 13, 64, 1000]) {
      const q = new BoundedQueue<number>(capacity);
      const model: number[] = [];
      let next = 0;
      // Phases bias towards filling or draining so the ring grows and wraps.
      let fillBias = 0.5;
      for (let step = 0; step < 3000; step++) {
        const context = `seed ${seed}, capacity ${capacity}, step ${step}`;
        if (step % 100 === 0) fillBias = 0.2 + rand() * 0.6;
        const r = rand();
        if (r < fillBias) {
          const ok = q.offer(next);
          assert.equal(ok, model.length < capacity, `${context}: offer`);
          if (ok) model.push(next);
          next++;
        } else if (r < fillBias + 0.02) {
          // force: past the capacity.
          assert.equal(q.force(next), true, `${context}: force`);
          model.push(next++);
        } else if (r < 0.995) {
          assert.equal(q.shift(), model.shift(), `${context}: shift`);
        } else {
          assert.equal(q.clear(), model.length, `${context}: clear`);
          model.length = 0;
        }
        assert.equal(q.length, model.length, `${context}: length`);
      }
      const rest: number[] = [];
      while (q.length > 0) rest.push(q.shift()!);
      assert.deepEqual(rest, model, `seed ${seed}, capacity ${capacity}: drain`);
    }
  }
});

Deno.test("queue wait resolves at once when items are queued or the queue is closed", async () => {
  const q = new BoundedQueue<number>(4);
  q.offer(1);
  assert.equal(await settled(q.wait()), true);
  q.shift();
  const pending = q.wait();
  assert.equal(await settled(pending), false);
  q.close();
  assert.equal(await settled(pending), true);
  assert.equal(await settled(q.wait()), true, "a closed queue never blocks");
});

Deno.test("queue wait resolves on the first offer", async () => {
  const q = new BoundedQueue<string>(4);
  const woken = q.wait();
  assert.equal(await settled(woken), false);
  q.offer("a");
  q.offer("b");
  await woken;
  assert.equal(q.length, 2, "the consumer sees every item offered before it ran");
  assert.equal(q.shift(), "a");
  assert.equal(q.shift(), "b");
  // A second wait is woken by the next offer, and by force.
  const again = q.wait();
  assert.equal(await settled(again), false);
  q.force("c");
  assert.equal(await settled(again), true);
});

Deno.test("queue closed refuses offers but remaining items stay readable", async () => {
  const q = new BoundedQueue<string>(3);
  q.offer("a");
  q.offer("b");
  assert.equal(q.closed, false);
  q.close();
  q.close(); // idempotent
  assert.equal(q.closed, true);
  assert.equal(q.offer("c"), false);
  assert.equal(q.length, 2);
  await q.wait();
  assert.equal(q.shift(), "a");
  assert.equal(q.shift(), "b");
  assert.equal(q.shift(), undefined);
  await q.wait();
});

Deno.test("queue consumer loop drains a producer in order", async () => {
  const rand = mulberry32(5);
  const q = new BoundedQueue<number>(16);
  const got: number[] = [];
  const consumer = (async () => {
    for (;;) {
      await q.wait();
      if (q.length === 0 && q.closed) return;
      while (q.length > 0) got.push(q.shift()!);
    }
  })();
  let next = 0;
  const sent: number[] = [];
  for (let round = 0; round < 200; round++) {
    for (let k = Math.floor(rand() * 20); k > 0; k--) {
      if (q.offer(next)) sent.push(next);
      next++;
    }
    await Promise.resolve();
    await Promise.resolve();
  }
  q.close();
  await consumer;
  assert.deepEqual(got, sent);
  assert.ok(sent.length > 1000);
});
