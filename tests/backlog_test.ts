// Caps on bytes waiting to be written: the room log's and the hub's, and how a push past
// them is refused whole, by the hub and by the push API.
import assert from "node:assert/strict";
import { createApiHandler } from "../src/api/push_api.ts";
import { silentLogger } from "../src/log.ts";
import { Backlog } from "../src/server/backlog.ts";
import { BacklogFullError } from "../src/server/backlog_full_error.ts";
import { Comet } from "../src/server/comet.ts";
import { FrameQueue, SharedFrame } from "../src/server/frame_queue.ts";
import { FakeWire } from "./_fake_wire.ts";
import { utf8 } from "./_helpers.ts";

/** A hub with `n` members of room `live://1` whose writes never complete. */
async function stalledRoom(comet: Comet, n: number): Promise<FakeWire[]> {
  const wires: FakeWire[] = [];
  for (let i = 0; i < n; i++) {
    const wire = new FakeWire();
    wire.gate = new Promise(() => {});
    const auth = utf8.encode(
      JSON.stringify({ key: `k${i}`, room_id: "live://1", accepts: [1000] }),
    );
    wire.inbound = [{ ver: 1, op: 7, seq: 1, body: auth }];
    comet._serve(wire);
    wires.push(wire);
  }
  for (let i = 0; i < 100 && comet.connections < n; i++) await Promise.resolve();
  assert.equal(comet.connections, n);
  return wires;
}

Deno.test("backlog caps must be positive integers or Infinity", () => {
  for (const maxBytes of [0, -1, 1.5, NaN]) {
    assert.throws(() => new Backlog({ maxBytes }), RangeError);
  }
  assert.equal(new Backlog({ maxRoomBytes: Infinity }).maxRoomBytes, Infinity);
});

Deno.test("frame queue counts frames pushed alone apart from the others, and their bytes", () => {
  const backlog = new Backlog();
  const queue = new FrameQueue(backlog);
  for (let i = 0; i < 10; i++) queue.push(new Uint8Array(i + 1), i % 2 === 0 ? "alone" : "reply");
  assert.deepEqual([queue.length, queue.alone, queue.bytes, backlog.queueBytes], [10, 5, 55, 55]);
  assert.equal(queue.shift()!.length, 1);
  assert.deepEqual([queue.length, queue.alone, queue.bytes, backlog.queueBytes], [9, 4, 54, 54]);
  assert.equal(queue.truncate(4), 5, "the five newest go");
  assert.deepEqual([queue.length, queue.alone, queue.bytes, backlog.queueBytes], [4, 2, 14, 14]);
  assert.equal(queue.nextLength, 2);
  queue.push(new Uint8Array(100), "room");
  assert.equal(backlog.queueBytes, 14, "a room frame is counted by its room's log");
  queue.clear();
  assert.deepEqual([queue.length, queue.bytes, backlog.queueBytes], [0, 0, 0]);
  assert.ok(queue.release());
});

Deno.test("a shared frame counts once while any queue holds it", () => {
  const backlog = new Backlog();
  const frame = new Uint8Array(500);
  const shared = new SharedFrame(frame.length);
  const queues = [0, 1, 2].map(() => new FrameQueue(backlog));
  for (const q of queues) q.push(frame, shared);
  assert.equal(backlog.queueBytes, 500);
  queues[0]!.shift();
  queues[1]!.clear();
  assert.equal(backlog.queueBytes, 500, "one queue still holds it");
  queues[2]!.truncate(0);
  assert.equal(backlog.queueBytes, 0);
  assert.equal(shared.refs, 0);
});

Deno.test("a room push past the room's cap is refused whole and counted", async () => {
  await using comet = new Comet({ logger: silentLogger, backlog: { maxRoomBytes: 4096 } });
  const wires = await stalledRoom(comet, 3);
  const body = new Uint8Array(1000);
  let accepted = 0;
  let refused: unknown;
  for (let i = 0; i < 10 && refused === undefined; i++) {
    try {
      assert.equal(comet.pushRoom("live://1", 1000, body), 3);
      accepted++;
    } catch (err) {
      refused = err;
    }
  }
  assert.ok(refused instanceof BacklogFullError);
  assert.equal(refused.scope, "room");
  assert.match(refused.message, /^Room backlog is full: live:\/\/1 holds \d+ bytes/);
  assert.equal(accepted, 4, "four frames of 1016 bytes fit in 4096");
  assert.deepEqual(comet.stats.pushesRefused, { room: 1, server: 0 });
  assert.ok(comet.backlog.roomBytes >= 4 * 1016);
  for (const wire of wires) wire.gate = undefined;
  comet.close(0);
});

Deno.test("a push past the hub's cap is refused whole, for every kind of push", async () => {
  await using comet = new Comet({ logger: silentLogger, backlog: { maxBytes: 10_000 } });
  await stalledRoom(comet, 4);
  const replies = comet.backlog.queueBytes;
  const body = new Uint8Array(3000);
  // Four copies of 3016 bytes do not fit in 10,000: refused before anyone has it.
  assert.throws(() => comet.pushKeys(["k0", "k1", "k2", "k3"], 1000, body), BacklogFullError);
  assert.equal(comet.pushKeys(["k0", "k1"], 1000, body), 2, "two copies fit");
  assert.equal(comet.backlog.queueBytes, replies + 2 * 3016);
  // A broadcast is one allocation shared by every queue: it counts once.
  assert.equal(comet.pushAll(1000, body), 4);
  assert.equal(comet.backlog.queueBytes, replies + 3 * 3016);
  assert.throws(() => comet.pushAll(1000, body), BacklogFullError);
  assert.throws(() => comet.pushRoom("live://1", 1000, body), BacklogFullError);
  assert.deepEqual(comet.stats.pushesRefused, { room: 0, server: 3 });
  assert.equal(comet.stats.deliveries, 6);
  comet.close(0);
});

Deno.test("the push API answers a full backlog with 429, Retry-After and code -429", async () => {
  await using comet = new Comet({ logger: silentLogger, backlog: { maxRoomBytes: 2048 } });
  await stalledRoom(comet, 1);
  const handler = createApiHandler(comet, { admin: false });
  const push = () =>
    handler(
      new Request("http://localhost/goim/push/room?operation=1000&type=live&room=1", {
        method: "POST",
        body: new Uint8Array(1500),
      }),
    );
  assert.equal((await push()).status, 200);
  const res = await push();
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "1");
  const body = await res.json();
  assert.equal(body.code, -429);
  assert.match(body.message, /^Room backlog is full: /);
  const metrics = await (await handler(new Request("http://localhost/metrics"))).text();
  assert.match(metrics, /comet_pushes_refused_total\{kind="room"\} 1/);
  assert.match(metrics, /comet_backlog_bytes\{kind="rooms"\} 1516/);
  assert.match(metrics, /comet_backlog_limit_bytes\{kind="room"\} 2048/);
  comet.close(0);
});
