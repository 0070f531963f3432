import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { Channel, type SlowPolicy } from "../src/server/channel.ts";
import { FakeHooks, FakeWire } from "./_fake_wire.ts";

function setup(policy: SlowPolicy, queueSize = 3, grace = 250) {
  const wire = new FakeWire();
  const hooks = new FakeHooks();
  const channel = new Channel(wire, { queueSize, slow: policy, hooks, closeGrace: grace });
  return { wire, hooks, channel };
}

const utf8 = new TextEncoder();
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const frame = (i: number) => encodeFrame(1000, i, utf8.encode(`msg ${i}`));

/** Lets the writer task run its pending continuations. */
async function tick(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

Deno.test("channel constructor throws RangeError for a bad queue size", () => {
  for (const queueSize of [0, -1, 1.5, NaN]) {
    assert.throws(
      () =>
        new Channel(new FakeWire(), {
          queueSize,
          slow: "drop",
          hooks: new FakeHooks(),
          closeGrace: 1,
        }),
      RangeError,
    );
  }
});

Deno.test("channel drop policy drops and counts pushes to a full queue", async () => {
  const { wire, hooks, channel } = setup("drop", 3);
  channel._open();
  for (let i = 0; i < 3; i++) assert.equal(channel.push(frame(i)), true);
  assert.equal(channel.queued, 3);
  for (let i = 3; i < 8; i++) assert.equal(channel.push(frame(i)), false);
  assert.equal(hooks.dropCount, 5);
  assert.equal(hooks.slowCount, 0);
  assert.equal(hooks.closingCalls.length, 0);
  assert.equal(channel.queued, 3);
  assert.equal(channel.state, "open", "dropping does not close");

  const writer = channel._done();
  await tick();
  assert.equal(wire.writes.length, 1);
  assert.deepEqual(wire.framesPerWrite()[0]!.map((f) => f.seq), [0, 1, 2]);
  // Room again: pushes queue and are written.
  assert.equal(channel.push(frame(9)), true);
  await tick();
  assert.equal(wire.writes.length, 2);
  assert.equal(hooks.dropCount, 5);

  channel.close("bye");
  await writer;
  assert.equal(wire.closes >= 1, true);
  const last = wire.framesPerWrite().at(-1)!;
  assert.equal(last.at(-1)!.op, Op.DisconnectReply);
  assert.equal(text(last.at(-1)!.body), "bye");
});

Deno.test("channel close policy calls slow, queues op 6 after what is queued, then closes", async () => {
  const { wire, hooks, channel } = setup("close", 3, 1234);
  channel._open();
  for (let i = 0; i < 3; i++) assert.equal(channel.push(frame(i)), true);
  assert.equal(channel.push(frame(3)), false);
  assert.equal(hooks.slowCount, 1);
  assert.equal(hooks.dropCount, 0);
  assert.equal(channel.state, "closing");
  assert.equal(hooks.closingCalls.length, 1);
  assert.equal(hooks.closingCalls[0]!.channel, channel);
  assert.equal(hooks.closingCalls[0]!.grace, 1234);
  assert.equal(hooks.closingCalls[0]!.queued, 4, "op 6 is queued past the capacity");
  // Further pushes are refused quietly: no second slow() and no second op 6.
  assert.equal(channel.push(frame(4)), false);
  assert.equal(channel.send(1000, "late"), false);
  assert.equal(hooks.slowCount, 1);
  assert.equal(channel.queued, 4);
  assert.equal(wire.closes, 0, "the wire stays open until the flush");

  await channel._done();
  assert.equal(wire.writes.length, 1, "everything is flushed with one write");
  const [frames] = wire.framesPerWrite();
  assert.deepEqual(frames!.map((f) => [f.op, f.seq]), [
    [1000, 0],
    [1000, 1],
    [1000, 2],
    [Op.DisconnectReply, 0],
  ]);
  assert.equal(text(frames![3]!.body), "slow consumer");
  assert.equal(wire.closes, 1);
  assert.equal(channel.state, "closed");
  assert.equal(channel.queued, 0);
});

Deno.test("channel close policy while the writer waits flushes in one write then closes", async () => {
  const { wire, hooks, channel } = setup("close", 4);
  const writer = channel._done();
  await tick();
  assert.equal(wire.writes.length, 0);
  for (let i = 0; i < 4; i++) channel.push(frame(i));
  channel.push(frame(4)); // overflow: slow consumer
  assert.equal(hooks.slowCount, 1);
  await writer;
  assert.equal(wire.writes.length, 1);
  assert.deepEqual(wire.framesPerWrite()[0]!.map((f) => f.op), [
    1000,
    1000,
    1000,
    1000,
    Op.DisconnectReply,
  ]);
  assert.equal(wire.closes, 1);
});

Deno.test("channel writer coalesces several queued frames into one write call", async () => {
  const { wire, channel } = setup("drop", 64);
  const writer = channel._done();
  await tick();
  for (let i = 0; i < 10; i++) channel.push(frame(i));
  await tick();
  assert.equal(wire.writes.length, 1, "one write for ten frames");
  assert.deepEqual(wire.encodes, [{
    count: 10,
    bytes: wire.writes[0]!.length,
  }]);
  assert.deepEqual(wire.framesPerWrite()[0]!.map((f) => f.seq), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  // While a write is in flight, frames pile up; the next wake-up writes them all at once.
  const { promise: gate, resolve: open } = Promise.withResolvers<void>();
  wire.gate = gate;
  channel.push(frame(10));
  await tick();
  assert.equal(wire.writes.length, 2, "the write of frame 10 is in flight");
  for (let i = 11; i < 20; i++) channel.push(frame(i));
  await tick();
  assert.equal(wire.writes.length, 2, "nothing written while a write is in flight");
  wire.gate = undefined;
  open();
  await tick();
  assert.equal(wire.writes.length, 3);
  assert.deepEqual(wire.framesPerWrite()[2]!.map((f) => f.seq), [
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
  ]);

  channel.close();
  await writer;
  assert.equal(wire.writes.length, 4);
  assert.deepEqual(wire.framesPerWrite()[3]!.map((f) => f.op), [Op.DisconnectReply]);
  assert.equal(wire.closes, 1);
});

Deno.test("channel close flushes what is queued with op 6 last in one write", async () => {
  const { wire, hooks, channel } = setup("close", 8, 100);
  channel.send(1000, "a", 0);
  channel.send(1001, "b", 0);
  channel.close("going away");
  channel.close("twice"); // idempotent
  assert.equal(hooks.closingCalls.length, 1);
  assert.equal(hooks.slowCount, 0);
  assert.equal(channel.queued, 3);
  await channel._done();
  assert.equal(wire.writes.length, 1);
  const frames = wire.framesPerWrite()[0]!;
  assert.deepEqual(frames.map((f) => [f.op, text(f.body)]), [
    [1000, "a"],
    [1001, "b"],
    [Op.DisconnectReply, "going away"],
  ]);
  assert.equal(wire.closes, 1);
  assert.equal(channel.state, "closed");
});

Deno.test("channel writer ends and closes the wire when a write fails", async () => {
  const { wire, channel } = setup("drop", 8);
  wire.failWith = new Error("connection reset");
  channel.push(frame(0));
  channel.push(frame(1));
  await channel._done();
  assert.equal(wire.writes.length, 1);
  assert.equal(wire.closes, 1);
  assert.equal(channel.state, "closed");
  assert.equal(channel.push(frame(2)), false, "a closed channel takes nothing");
  assert.equal(channel.queued, 0);
});

Deno.test("channel abort drops queued frames and closes the wire at once", async () => {
  const { wire, hooks, channel } = setup("close", 8);
  const writer = channel._done();
  await tick();
  channel.abort();
  channel.push(frame(0));
  await writer;
  assert.equal(wire.writes.length, 0);
  assert.equal(hooks.slowCount, 0, "a closed queue is not a slow consumer");
  assert.equal(channel.state, "closed");
  assert.ok(wire.closes >= 1);
});

Deno.test("channel writers of two channels do not mix their batches", async () => {
  const a = setup("drop", 16);
  const b = setup("drop", 16);
  const wa = a.channel._done();
  const wb = b.channel._done();
  await tick();
  for (let i = 0; i < 5; i++) {
    a.channel.push(encodeFrame(1000, i));
    b.channel.push(encodeFrame(2000, i));
  }
  a.channel.close();
  b.channel.close();
  await Promise.all([wa, wb]);
  const fa = a.wire.framesPerWrite().flat();
  const fb = b.wire.framesPerWrite().flat();
  assert.deepEqual(fa.map((f) => f.op), [1000, 1000, 1000, 1000, 1000, Op.DisconnectReply]);
  assert.deepEqual(fb.map((f) => f.op), [2000, 2000, 2000, 2000, 2000, Op.DisconnectReply]);
  assert.equal(a.wire.writes.length, 1);
  assert.equal(b.wire.writes.length, 1);
});
