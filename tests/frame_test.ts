import assert from "node:assert/strict";
import {
  DEFAULT_MAX_BODY,
  encodeFrame,
  frameOp,
  HEADER_SIZE,
  peekFrame,
  PROTOCOL_VERSION,
  writeFrame,
  writeHeader,
} from "../src/protocol/frame.ts";
import { ProtocolError } from "../src/protocol/protocol_error.ts";

const hex = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("frame constants match the goim wire contract", () => {
  assert.equal(HEADER_SIZE, 16);
  assert.equal(DEFAULT_MAX_BODY, 4096);
  assert.equal(PROTOCOL_VERSION, 1);
});

Deno.test("encodeFrame writes a big-endian 16-byte header then the body", () => {
  const body = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x01]);
  const bytes = encodeFrame(0x01020304, 0x0a0b0c0d, body, 0x0506);
  assert.equal(bytes.length, HEADER_SIZE + body.length);
  // packLen 21 | headerLen 16 | ver | op | seq | body
  assert.equal(hex(bytes), "00000015" + "0010" + "0506" + "01020304" + "0a0b0c0d" + "deadbeef01");
});

Deno.test("encodeFrame defaults to an empty body and version 1", () => {
  const bytes = encodeFrame(2, 7);
  assert.equal(hex(bytes), "00000010" + "0010" + "0001" + "00000002" + "00000007");
});

Deno.test("encodeFrame writes negative int32 and int16 values in two's complement", () => {
  const bytes = encodeFrame(-1, -0x80000000, new Uint8Array(0), -2);
  const view = new DataView(bytes.buffer);
  assert.equal(view.getInt16(6), -2);
  assert.equal(view.getInt32(8), -1);
  assert.equal(view.getInt32(12), -0x80000000);
  assert.equal(hex(bytes.subarray(6, 16)), "fffe" + "ffffffff" + "80000000");
});

Deno.test("encodeFrame accepts the int32 and int16 extremes", () => {
  for (const op of [-0x80000000, 0x7fffffff, 0, 1000]) {
    for (const ver of [-0x8000, 0x7fff, 0, 1]) {
      const p = peekFrame(encodeFrame(op, op, new Uint8Array(0), ver), 0);
      assert.deepEqual(p, { packLen: 16, ver, op, seq: op });
    }
  }
});

Deno.test("encodeFrame throws RangeError for op or seq outside int32", () => {
  for (const bad of [0x80000000, -0x80000001, 1.5, NaN, Infinity, -Infinity, 2 ** 53]) {
    assert.throws(() => encodeFrame(bad, 0), RangeError, `op ${bad}`);
    assert.throws(() => encodeFrame(0, bad), RangeError, `seq ${bad}`);
  }
});

Deno.test("encodeFrame throws RangeError for ver outside int16", () => {
  for (const bad of [0x8000, -0x8001, 0.5, NaN, Infinity, 65535]) {
    assert.throws(() => encodeFrame(0, 0, new Uint8Array(0), bad), RangeError, `ver ${bad}`);
  }
});

Deno.test("encodeFrame copies the body so later changes to it do not leak in", () => {
  const body = new Uint8Array([1, 2, 3]);
  const bytes = encodeFrame(1000, 0, body);
  body[0] = 99;
  assert.deepEqual([...bytes.subarray(HEADER_SIZE)], [1, 2, 3]);
});

Deno.test("writeFrame writes at an offset inside a subarray and returns the end", () => {
  const backing = new Uint8Array(100).fill(0xaa);
  const target = backing.subarray(10, 90);
  const body = new Uint8Array([7, 8, 9]);
  const end = writeFrame(target, 5, 1001, 42, body);
  assert.equal(end, 5 + HEADER_SIZE + 3);
  // Untouched around the frame.
  assert.ok(backing.subarray(0, 15).every((b) => b === 0xaa));
  assert.ok(backing.subarray(15 + HEADER_SIZE + 3).every((b) => b === 0xaa));
  assert.deepEqual(target.subarray(5, end), encodeFrame(1001, 42, body));
  // Two frames back to back, as a batch.
  const second = writeFrame(target, end, 3, 1, new Uint8Array([0, 0, 0, 5]), 1);
  assert.deepEqual(
    peekFrame(target, end),
    { packLen: 20, ver: 1, op: 3, seq: 1 },
  );
  assert.equal(second, end + 20);
});

Deno.test("peekFrame reads a header without copying and checks it", () => {
  const a = encodeFrame(1000, 1, new Uint8Array(10), 1);
  const b = encodeFrame(1001, 2, new Uint8Array(0), 3);
  const both = new Uint8Array(a.length + b.length);
  both.set(a);
  both.set(b, a.length);
  assert.deepEqual(peekFrame(both, 0), { packLen: 26, ver: 1, op: 1000, seq: 1 });
  assert.deepEqual(peekFrame(both, 26), { packLen: 16, ver: 3, op: 1001, seq: 2 });
});

Deno.test("peekFrame throws ProtocolError for short, malformed or truncated frames", () => {
  const good = encodeFrame(1000, 1, new Uint8Array(4));
  // Shorter than a header.
  assert.throws(() => peekFrame(good.subarray(0, 15), 0), ProtocolError);
  assert.throws(() => peekFrame(good, 10), ProtocolError);
  assert.throws(() => peekFrame(good, good.length + 5), ProtocolError);
  // Body truncated: packLen says more than there is.
  assert.throws(() => peekFrame(good.subarray(0, good.length - 1), 0), ProtocolError);
  // headerLen != 16.
  const badHeader = good.slice();
  badHeader[5] = 12;
  assert.throws(() => peekFrame(badHeader, 0), ProtocolError);
  // packLen < 16, and negative.
  const small = good.slice();
  new DataView(small.buffer).setInt32(0, 15);
  assert.throws(() => peekFrame(small, 0), ProtocolError);
  new DataView(small.buffer).setInt32(0, -1);
  assert.throws(() => peekFrame(small, 0), ProtocolError);
});

Deno.test("ProtocolError is an Error with its own name and keeps the cause", () => {
  const cause = new Error("root");
  const err = new ProtocolError("Header length is not 16: 12", { cause });
  assert.ok(err instanceof Error);
  assert.ok(err instanceof ProtocolError);
  assert.equal(err.name, "ProtocolError");
  assert.equal(err.message, "Header length is not 16: 12");
  assert.equal(err.cause, cause);
  assert.match(String(err), /^ProtocolError: Header length/);
  assert.equal(new ProtocolError("x").cause, undefined);
});

Deno.test("peekFrame throws RangeError for a negative or fractional offset", () => {
  const backing = new Uint8Array(64);
  backing.set(encodeFrame(1000, 1), 0);
  // A view that starts after a whole frame: a negative offset must not reach before it.
  const view = backing.subarray(16);
  assert.throws(() => peekFrame(view, -16), RangeError);
  assert.throws(() => peekFrame(backing, 0.5), RangeError);
  assert.throws(() => peekFrame(backing, NaN), RangeError);
});

Deno.test("frameOp reads the op of an encoded frame, negative ones included", () => {
  for (const op of [0, 8, 1000, 0x7fffffff, -1, -0x80000000]) {
    assert.equal(frameOp(encodeFrame(op, 1, new Uint8Array([1, 2]))), op);
  }
});

Deno.test("writeHeader writes the goim header big-endian, negative fields included", () => {
  const out = new Uint8Array(HEADER_SIZE + 4).fill(0xee);
  assert.equal(writeHeader(out, 2, 1000, -2, 0x01020304, 1), 2 + HEADER_SIZE);
  assert.deepEqual([...out.subarray(2, 2 + HEADER_SIZE)], [
    0,
    0,
    3,
    232, // packLen 1000
    0,
    16, // header length
    0,
    1, // version
    0xff,
    0xff,
    0xff,
    0xfe, // op -2
    1,
    2,
    3,
    4, // seq
  ]);
  assert.deepEqual([out[0], out[1], out[18], out[19]], [0xee, 0xee, 0xee, 0xee]);
  const view = new DataView(out.buffer, 2);
  assert.deepEqual([view.getInt32(0), view.getInt16(4), view.getInt32(8)], [1000, 16, -2]);
});
