import assert from "node:assert/strict";
import { BufferPool } from "../src/transport/buffer_pool.ts";

Deno.test("buffer pool constructor throws RangeError for a bad size or slab count", () => {
  for (const size of [0, -1, 1.5, NaN]) assert.throws(() => new BufferPool(size), RangeError);
  for (const perSlab of [0, 2.5]) {
    assert.throws(() => new BufferPool(16, { perSlab }), RangeError);
  }
});

Deno.test("buffer pool hands out disjoint buffers of its size from shared slabs", () => {
  const pool = new BufferPool(8, { perSlab: 4 });
  const bufs = Array.from({ length: 6 }, () => pool.take());
  assert.equal(pool.used, 6);
  assert.equal(pool.slabs, 2);
  bufs.forEach((b, i) => {
    assert.equal(b.length, 8);
    b.fill(i + 1);
  });
  // Each buffer kept its own bytes: none overlaps another.
  bufs.forEach((b, i) => assert.deepEqual([...b], new Array(8).fill(i + 1)));
  assert.equal(bufs[0]!.buffer, bufs[3]!.buffer, "four to a slab");
  assert.notEqual(bufs[3]!.buffer, bufs[4]!.buffer);
});

Deno.test("buffer pool reuses given-back buffers before allocating", () => {
  const pool = new BufferPool(8, { perSlab: 2 });
  const a = pool.take();
  pool.take();
  pool.give(a);
  assert.equal(pool.take(), a);
  assert.equal(pool.slabs, 1);
});

Deno.test("buffer pool lets go of an empty slab unless it is the only one with room", () => {
  const pool = new BufferPool(8, { perSlab: 2 });
  const bufs = Array.from({ length: 6 }, () => pool.take());
  assert.equal(pool.slabs, 3);
  // The first slab empties while the others are full: it is the only one with room.
  pool.give(bufs[0]!);
  pool.give(bufs[1]!);
  assert.equal(pool.slabs, 3);
  // The second empties too: one of the two empty slabs goes.
  pool.give(bufs[2]!);
  pool.give(bufs[3]!);
  assert.equal(pool.slabs, 2);
  pool.give(bufs[4]!);
  pool.give(bufs[5]!);
  assert.equal(pool.slabs, 1);
  assert.equal(pool.used, 0);
  // What is left still hands out buffers.
  assert.equal(pool.take().length, 8);
});

Deno.test("buffer pool give throws TypeError for a foreign or repeated buffer", () => {
  const pool = new BufferPool(8);
  const other = new BufferPool(8).take();
  assert.throws(() => pool.give(other), TypeError);
  assert.throws(() => pool.give(new Uint8Array(8)), TypeError);
  const buf = pool.take();
  pool.give(buf);
  assert.throws(() => pool.give(buf), TypeError);
  assert.throws(() => pool.give(pool.take().subarray(0, 4)), TypeError);
});
