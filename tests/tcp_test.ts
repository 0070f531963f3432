import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { TcpWire } from "../src/transport/tcp.ts";
import { concat } from "./_bytes.ts";
import { FrameRecorder, wirePair } from "./_helpers.ts";

/** A loopback pair: the client socket and a TcpWire over the accepted one. */
const pair = () => wirePair((conn) => new TcpWire(conn));

Deno.test("TCP wire gives its read buffer back once closed, not while its read is pending", async () => {
  const pool = TcpWire.readBuffers;
  const before = pool.used;
  using p = await pair();
  const read = p.wire.read();
  assert.equal(pool.used, before + 1, "the pending read holds a buffer");
  p.wire.close();
  assert.equal(pool.used, before + 1, "the runtime may still write into it");
  assert.equal(await read, null);
  assert.equal(pool.used, before);
});

Deno.test("TCP wire gives its read buffer back when the peer leaves", async () => {
  const pool = TcpWire.readBuffers;
  const before = pool.used;
  using p = await pair();
  const read = p.wire.read();
  p.client.close();
  assert.equal(await read, null);
  assert.equal(pool.used, before);
  p.wire.close();
  assert.equal(pool.used, before, "given back once only");
});

Deno.test("TCP wires reusing a read buffer keep each other's frames apart", async () => {
  const body = (n: number, fill: number) => new Uint8Array(n).fill(fill);
  using a = await pair();
  // A frame split across reads leaves part of it with A when A closes.
  const half = encodeFrame(Op.SendMsg, 1, body(700, 1));
  await a.client.write(half.subarray(0, 600));
  const pending = a.wire.read();
  await new Promise((r) => setTimeout(r, 20));
  a.wire.close();
  assert.equal(await pending, null);
  using b = await pair();
  using c = await pair();
  const frames = [encodeFrame(Op.SendMsg, 2, body(900, 2)), encodeFrame(Op.SendMsg, 3, body(5, 3))];
  await b.client.write(frames[0]!);
  await c.client.write(frames[1]!);
  const [fb, fc] = await Promise.all([b.wire.read(), c.wire.read()]);
  assert.equal(fb?.seq, 2);
  assert.deepEqual(fb?.body, body(900, 2));
  assert.equal(fc?.seq, 3);
  assert.deepEqual(fc?.body, body(5, 3));
});

const frames = (...ops: number[]) => concat(ops.map((op, i) => encodeFrame(op, i + 1)));

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

Deno.test("listening TCP wire hands over buffered frames first, then each as it arrives", async () => {
  using p = await pair();
  await p.client.write(frames(Op.Auth, Op.Heartbeat, Op.Sub));
  // The hub reads the auth frame itself; the two after it are already buffered.
  assert.equal((await p.wire.read())?.op, Op.Auth);
  const reader = new FrameRecorder();
  p.wire._listen(reader);
  assert.deepEqual(reader.ops, [Op.Heartbeat, Op.Sub], "buffered frames go at once");
  await p.client.write(frames(Op.SendMsg));
  await settle();
  assert.deepEqual(reader.ops, [Op.Heartbeat, Op.Sub, Op.SendMsg]);
  p.client.close();
  await reader.done;
  assert.deepEqual(reader.ended, [undefined], "end of stream, once, with no error");
});

Deno.test("listening TCP wire waits while its reader is busy and stops when told", async () => {
  using p = await pair();
  const reader = new FrameRecorder();
  const busy = Promise.withResolvers<boolean>();
  reader.answer = (op) => op === Op.SendMsg ? busy.promise : op !== Op.Unsub;
  p.wire._listen(reader);
  await p.client.write(frames(Op.Heartbeat, Op.SendMsg, Op.Sub, Op.Unsub, Op.Heartbeat));
  await settle();
  assert.deepEqual(reader.ops, [Op.Heartbeat, Op.SendMsg], "nothing while the reader is busy");
  busy.resolve(true);
  await settle();
  assert.deepEqual(reader.ops, [Op.Heartbeat, Op.SendMsg, Op.Sub, Op.Unsub], "stops at false");
  p.client.close();
  await settle();
  assert.deepEqual(reader.ended, [], "a reader that said stop hears nothing more");
});

Deno.test("listening TCP wire reports a protocol error and a close from our side", async () => {
  {
    using p = await pair();
    const reader = new FrameRecorder();
    p.wire._listen(reader);
    const bad = encodeFrame(Op.Heartbeat, 1);
    new DataView(bad.buffer).setInt16(4, 20); // header length must be 16
    await p.client.write(bad);
    await reader.done;
    assert.equal(reader.ended.length, 1);
    assert.match(String(reader.ended[0]), /Header length/);
  }
  {
    const pool = TcpWire.readBuffers;
    const before = pool.used;
    using p = await pair();
    const reader = new FrameRecorder();
    p.wire._listen(reader);
    assert.equal(pool.used, before + 1, "the pending read holds a buffer");
    p.wire.close();
    await reader.done;
    assert.deepEqual(reader.ended, [undefined]);
    assert.equal(pool.used, before, "and gives it back once the read has ended");
  }
});
