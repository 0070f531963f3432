// The RFC 6455 frame parser: random chunkings, fragments, limits and every
// protocol error a peer can commit.
import assert from "node:assert/strict";
import { ProtocolError } from "../src/protocol/protocol_error.ts";
import {
  encodeBinaryMessage,
  encodeWsFrame,
  WebSocketError,
  wsHeaderSize,
  WsOpcode,
} from "../src/transport/websocket_codec.ts";
import { WebSocketParser, type WebSocketParserOptions } from "../src/transport/websocket_parser.ts";
import { mulberry32 as rng } from "./_random.ts";
import { concat } from "./_bytes.ts";

const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
const utf8 = new TextEncoder();

function masked(opcode: number, payload: Uint8Array | string = "", fin = true): Uint8Array {
  const bytes = typeof payload === "string" ? utf8.encode(payload) : payload;
  return encodeWsFrame(opcode, bytes, { fin, mask: MASK });
}

function pattern(n: number, salt = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + salt) & 0xff;
  return out;
}

interface Event {
  op: number;
  payload: Uint8Array;
  code?: number;
  reason?: string;
}

/**
 * Feeds `data` in chunks of random sizes through one reused scratch buffer,
 * scribbling over it after each drain: the parser must not keep borrowed bytes.
 */
function parse(
  data: Uint8Array,
  random: () => number,
  options: WebSocketParserOptions = { maxMessage: 1 << 20 },
  maxChunk = 64,
): Event[] {
  const parser = new WebSocketParser(options);
  const scratch = new Uint8Array(Math.max(maxChunk, 1));
  const events: Event[] = [];
  let at = 0;
  while (at < data.length) {
    const n = Math.min(data.length - at, 1 + Math.floor(random() * maxChunk));
    scratch.set(data.subarray(at, at + n));
    at += n;
    parser.push(scratch.subarray(0, n));
    for (let op = parser.next(); op !== undefined; op = parser.next()) {
      const e: Event = { op, payload: parser.payload.slice() };
      if (op === WsOpcode.Close) {
        e.code = parser.closeCode;
        e.reason = parser.closeReason;
      }
      events.push(e);
    }
    scratch.fill(0xee);
  }
  return events;
}

/** Asserts that parsing `data` fails with close code `code`. */
function assertFails(
  data: Uint8Array,
  code: number,
  message?: RegExp,
  options: WebSocketParserOptions = {},
): void {
  const parser = new WebSocketParser(options);
  parser.push(data);
  let caught: unknown;
  try {
    while (parser.next() !== undefined);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof WebSocketError, `expected a WebSocketError, got ${caught}`);
  assert.ok(caught instanceof ProtocolError);
  assert.equal(caught.code, code);
  if (message) assert.match(caught.message, message);
  // Failed for good: the same error again, and later bytes are ignored.
  parser.push(masked(WsOpcode.Binary, "more"));
  assert.throws(() => parser.next(), (err) => err === caught);
}

Deno.test("parser reassembles masked frames of every length class under random chunkings", () => {
  const sizes = [0, 1, 125, 126, 127, 1000, 65_535, 65_536, 70_000];
  const payloads = sizes.map((n, i) => pattern(n, i));
  const data = concat([
    ...payloads.map((p) => masked(WsOpcode.Binary, p)),
    masked(WsOpcode.Ping, "hi"),
  ]);
  for (let seed = 1; seed <= 25; seed++) {
    const events = parse(data, rng(seed), { maxMessage: 1 << 20 }, seed % 5 === 0 ? 3 : 4096);
    assert.equal(events.length, sizes.length + 1, `seed ${seed}`);
    for (let i = 0; i < sizes.length; i++) {
      assert.equal(events[i]!.op, WsOpcode.Binary);
      assert.deepEqual(events[i]!.payload, payloads[i], `seed ${seed}, message ${i}`);
    }
    assert.equal(events[sizes.length]!.op, WsOpcode.Ping);
    assert.deepEqual(events[sizes.length]!.payload, utf8.encode("hi"));
  }
});

Deno.test("parser handles small frames fed one byte at a time", () => {
  const data = concat([
    masked(WsOpcode.Binary, pattern(130)),
    masked(WsOpcode.Pong, "p"),
    masked(WsOpcode.Binary, ""),
  ]);
  const events = parse(data, () => 0, undefined, 1);
  assert.deepEqual(events.map((e) => e.op), [WsOpcode.Binary, WsOpcode.Pong, WsOpcode.Binary]);
  assert.deepEqual(events[0]!.payload, pattern(130));
  assert.equal(events[2]!.payload.length, 0);
});

Deno.test("length encodings: 7, 16 and 64 bits on the wire", () => {
  assert.equal(encodeWsFrame(WsOpcode.Binary, pattern(125))[1], 125);
  const f16 = encodeWsFrame(WsOpcode.Binary, pattern(126));
  assert.deepEqual([...f16.subarray(1, 4)], [126, 0, 126]);
  const f64 = encodeWsFrame(WsOpcode.Binary, pattern(65_536));
  assert.deepEqual([...f64.subarray(1, 10)], [127, 0, 0, 0, 0, 0, 1, 0, 0]);
  assert.equal(wsHeaderSize(125), 2);
  assert.equal(wsHeaderSize(126), 4);
  assert.equal(wsHeaderSize(65_535), 4);
  assert.equal(wsHeaderSize(65_536), 10);
  assert.equal(wsHeaderSize(65_536, true), 14);
  // A short payload spelled with a 64-bit length is still accepted.
  const long = new Uint8Array([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 3, ...MASK, 1, 2, 3]);
  for (let i = 0; i < 3; i++) long[14 + i]! ^= MASK[i]!;
  const events = parse(long, rng(3), undefined, 2);
  assert.deepEqual(events[0]!.payload, new Uint8Array([1, 2, 3]));
});

Deno.test("parser reassembles a fragmented message with control frames in between", () => {
  const data = concat([
    masked(WsOpcode.Binary, new Uint8Array([1, 2]), false),
    masked(WsOpcode.Ping, "ping"),
    masked(WsOpcode.Continuation, new Uint8Array([]), false),
    masked(WsOpcode.Continuation, new Uint8Array([3]), false),
    masked(WsOpcode.Pong, ""),
    masked(WsOpcode.Continuation, new Uint8Array([4, 5])),
    masked(WsOpcode.Binary, new Uint8Array([6])),
  ]);
  for (let seed = 1; seed <= 10; seed++) {
    const events = parse(data, rng(seed), undefined, 5);
    assert.deepEqual(events.map((e) => e.op), [
      WsOpcode.Ping,
      WsOpcode.Pong,
      WsOpcode.Binary,
      WsOpcode.Binary,
    ]);
    assert.deepEqual(events[0]!.payload, utf8.encode("ping"));
    assert.deepEqual(events[2]!.payload, new Uint8Array([1, 2, 3, 4, 5]));
    assert.deepEqual(events[3]!.payload, new Uint8Array([6]));
  }
});

Deno.test("parser reassembles many tiny fragments", () => {
  const parts = [masked(WsOpcode.Binary, new Uint8Array([0]), false)];
  for (let i = 1; i < 299; i++) {
    parts.push(masked(WsOpcode.Continuation, new Uint8Array([i]), false));
  }
  parts.push(masked(WsOpcode.Continuation, new Uint8Array([299 & 0xff])));
  const events = parse(concat(parts), rng(9), { maxMessage: 300 }, 700);
  assert.equal(events.length, 1);
  assert.deepEqual(events[0]!.payload, Uint8Array.from({ length: 300 }, (_, i) => i & 0xff));
});

Deno.test("an unmasked client frame fails with 1002 as soon as its first two bytes arrive", () => {
  const parser = new WebSocketParser();
  parser.push(encodeWsFrame(WsOpcode.Binary, pattern(10)).subarray(0, 2));
  assert.throws(() => parser.next(), (err) => err instanceof WebSocketError && err.code === 1002);
  assertFails(encodeWsFrame(WsOpcode.Ping), 1002, /not masked/);
});

Deno.test("a client-side parser refuses masked frames and reads unmasked ones", () => {
  assertFails(masked(WsOpcode.Binary, "x"), 1002, /is masked/, { masked: false });
  const events = parse(encodeBinaryMessage(pattern(70_000)), rng(4), {
    masked: false,
    maxMessage: 1 << 20,
  }, 9000);
  assert.deepEqual(events[0]!.payload, pattern(70_000));
});

Deno.test("a message over the limit fails with 1009 before its payload is read", () => {
  const parser = new WebSocketParser({ maxMessage: 100 });
  parser.push(masked(WsOpcode.Binary, pattern(101)).subarray(0, 8));
  assert.throws(
    () => parser.next(),
    (err) =>
      err instanceof WebSocketError && err.code === 1009 && /limit of 100 bytes/.test(err.message),
  );
  // Exactly the limit is fine; the fragments of one message count together.
  assert.equal(parse(masked(WsOpcode.Binary, pattern(100)), rng(1), { maxMessage: 100 }).length, 1);
  assertFails(
    concat([
      masked(WsOpcode.Binary, pattern(60), false),
      masked(WsOpcode.Continuation, pattern(41)),
    ]),
    1009,
    undefined,
    { maxMessage: 100 },
  );
  assertFails(
    new Uint8Array([0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, ...MASK]),
    1009,
  );
});

Deno.test("a 64-bit length with its top bit set fails with 1002", () => {
  assertFails(
    new Uint8Array([0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, ...MASK]),
    1002,
    /most significant bit/,
  );
});

Deno.test("text messages are refused with 1003", () => {
  assertFails(masked(WsOpcode.Text, "hello"), 1003, /Text messages/);
});

Deno.test("reserved bits and reserved opcodes fail with 1002", () => {
  for (const rsv of [0x40, 0x20, 0x10]) {
    const frame = masked(WsOpcode.Binary, "x");
    frame[0]! |= rsv;
    assertFails(frame, 1002, /Reserved bits/);
  }
  for (const opcode of [3, 4, 5, 6, 7]) {
    assertFails(masked(opcode, "x"), 1002, /Reserved data opcode/);
  }
  for (const opcode of [11, 12, 13, 14, 15]) {
    assertFails(masked(opcode, "x"), 1002, /Reserved control opcode/);
  }
});

Deno.test("control frames must be final and at most 125 bytes", () => {
  // Built by hand: the encoder refuses to produce either.
  const long = new Uint8Array([0x89, 0x80 | 126, 0, 126, ...MASK, ...new Uint8Array(126)]);
  assertFails(long, 1002, /longer than 125/);
  const fragmented = masked(WsOpcode.Ping, "");
  fragmented[0]! &= 0x7f;
  assertFails(fragmented, 1002, /fragmented/);
  // 125 is allowed.
  const events = parse(masked(WsOpcode.Ping, pattern(125)), rng(2));
  assert.deepEqual(events[0]!.payload, pattern(125));
});

Deno.test("a bad fragment sequence fails with 1002", () => {
  assertFails(masked(WsOpcode.Continuation, "x"), 1002, /Continuation frame without/);
  assertFails(
    concat([masked(WsOpcode.Binary, "a", false), masked(WsOpcode.Binary, "b")]),
    1002,
    /inside a fragmented message/,
  );
  assertFails(
    concat([masked(WsOpcode.Binary, "a", false), masked(WsOpcode.Text, "b")]),
    1002,
  );
});

Deno.test("close frames: code and reason, none, and malformed ones", () => {
  const ok = parse(
    concat([
      masked(WsOpcode.Close, concat([new Uint8Array([0x03, 0xe8]), utf8.encode("bye ü")])),
      masked(WsOpcode.Close, ""),
      masked(WsOpcode.Close, new Uint8Array([0x0b, 0xb8])),
    ]),
    rng(5),
    undefined,
    3,
  );
  assert.deepEqual(ok.map((e) => [e.op, e.code, e.reason]), [
    [WsOpcode.Close, 1000, "bye ü"],
    [WsOpcode.Close, 1005, ""],
    [WsOpcode.Close, 3000, ""],
  ]);
  assertFails(masked(WsOpcode.Close, new Uint8Array([3])), 1002, /single byte/);
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000]) {
    assertFails(
      masked(WsOpcode.Close, new Uint8Array([code >> 8, code & 0xff])),
      1002,
      /Close code/,
    );
  }
  assertFails(masked(WsOpcode.Close, new Uint8Array([3, 0xe8, 0xc3, 0x28])), 1007, /UTF-8/);
});

Deno.test("pushing again before draining keeps every byte in order", () => {
  const parser = new WebSocketParser();
  const a = masked(WsOpcode.Binary, "first");
  const b = masked(WsOpcode.Binary, "second");
  parser.push(a.subarray(0, 4));
  parser.push(concat([a.subarray(4), b]));
  assert.equal(parser.next(), WsOpcode.Binary);
  assert.deepEqual(parser.payload, utf8.encode("first"));
  assert.equal(parser.next(), WsOpcode.Binary);
  assert.deepEqual(parser.payload, utf8.encode("second"));
  assert.equal(parser.next(), undefined);
});

Deno.test("parser options are checked", () => {
  assert.throws(() => new WebSocketParser({ maxMessage: -1 }), RangeError);
  assert.throws(() => new WebSocketParser({ maxMessage: 1.5 }), RangeError);
});
