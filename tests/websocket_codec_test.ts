// Unit tests of the RFC 6455 codec (parser and encoders) and of the HTTP opening
// handshake, the latter over real loopback sockets.
import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { ProtocolError } from "../src/protocol/protocol_error.ts";
import {
  encodeBinaryMessage,
  encodeClose,
  encodePong,
  encodeWsFrame,
  WebSocketError,
  WebSocketParser,
  type WebSocketParserOptions,
  writeWsHeader,
  wsHeaderSize,
  WsOpcode,
} from "../src/transport/websocket_codec.ts";
import { WsWire } from "../src/transport/websocket.ts";
import {
  HandshakeError,
  parseRequestHead,
  websocketAccept,
} from "../src/transport/ws_handshake.ts";
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

// ---------------------------------------------------------------- parser

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

// ---------------------------------------------------------------- encoders

Deno.test("close frame encoding", () => {
  assert.deepEqual([...encodeClose(1000, "bye")], [0x88, 5, 0x03, 0xe8, 0x62, 0x79, 0x65]);
  assert.deepEqual([...encodeClose()], [0x88, 0]);
  assert.deepEqual([...encodeClose(4000)], [0x88, 2, 0x0f, 0xa0]);
  // A long reason is cut to 123 bytes without splitting a character.
  const frame = encodeClose(1002, "é".repeat(100));
  assert.equal(frame[1], 2 + 122);
  const parser = new WebSocketParser({ masked: false });
  parser.push(frame);
  assert.equal(parser.next(), WsOpcode.Close);
  assert.equal(parser.closeCode, 1002);
  assert.equal(parser.closeReason, "é".repeat(61));
  for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000, 1000.5]) {
    assert.throws(() => encodeClose(code), RangeError, `code ${code}`);
  }
});

Deno.test("frame encoders: binary, pong, masking, and argument checks", () => {
  assert.deepEqual([...encodeBinaryMessage(new Uint8Array([7, 8]))], [0x82, 2, 7, 8]);
  assert.deepEqual([...encodePong(utf8.encode("hi"))], [0x8a, 2, 0x68, 0x69]);
  assert.deepEqual([...encodePong()], [0x8a, 0]);
  const m = encodeWsFrame(WsOpcode.Binary, new Uint8Array([1, 2, 3, 4, 5]), { mask: MASK });
  assert.deepEqual([...m.subarray(0, 6)], [0x82, 0x85, ...MASK]);
  assert.deepEqual([...m.subarray(6)], [1 ^ 0x37, 2 ^ 0xfa, 3 ^ 0x21, 4 ^ 0x3d, 5 ^ 0x37]);
  assert.equal(encodeWsFrame(WsOpcode.Binary, new Uint8Array(1), { fin: false })[0], 0x02);
  assert.throws(() => encodePong(new Uint8Array(126)), RangeError);
  assert.throws(() => encodeWsFrame(WsOpcode.Ping, new Uint8Array(0), { fin: false }), RangeError);
  assert.throws(() => encodeWsFrame(16), RangeError);
  assert.throws(() => encodeWsFrame(-1), RangeError);
  assert.throws(() => encodeWsFrame(2, new Uint8Array(1), { mask: new Uint8Array(3) }), RangeError);
  const out = new Uint8Array(20).fill(0xaa);
  assert.equal(writeWsHeader(out, 3, WsOpcode.Binary, 300), 7);
  assert.deepEqual([...out.subarray(2, 8)], [0xaa, 0x82, 126, 1, 44, 0xaa]);
});

// ---------------------------------------------------------------- handshake

Deno.test("accept key of RFC 6455's example", () => {
  // RFC 6455, section 1.3; also what Python's hashlib gives for key + GUID.
  assert.equal(websocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("accept key agrees with the runtime's SHA-1 for keys of every length class", async () => {
  const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  // Lengths around the 55/56 and 64-byte block edges once the GUID is appended.
  for (const length of [0, 1, 19, 20, 24, 27, 28, 29, 64, 100, 200]) {
    const bytes = crypto.getRandomValues(new Uint8Array(length));
    const key = btoa(String.fromCharCode(...bytes)).slice(0, length);
    const digest = await crypto.subtle.digest("SHA-1", utf8.encode(key + guid));
    const want = btoa(String.fromCharCode(...new Uint8Array(digest)));
    assert.equal(websocketAccept(key), want, `key of ${key.length} characters`);
  }
});

Deno.test("request head parser", () => {
  const head = parseRequestHead(
    utf8.encode(
      "GET /sub?room=1 HTTP/1.1\r\nHost: example\r\nCookie: a=1\r\ncookie: b=2\r\n" +
        "X-Empty:\r\nX-Spaced:   v  \r\n\r\n",
    ),
  );
  assert.equal(head.method, "GET");
  assert.equal(head.target, "/sub?room=1");
  assert.equal(head.headers.get("HOST"), "example");
  assert.equal(head.headers.get("cookie"), "a=1, b=2");
  assert.equal(head.headers.get("x-empty"), "");
  assert.equal(head.headers.get("x-spaced"), "v");
  // Bytes past ASCII stay one character each (Latin-1), not UTF-8 decoded.
  const latin = parseRequestHead(
    new Uint8Array([
      ...utf8.encode("GET /sub HTTP/1.1\r\nX-Name: caf"),
      0xc3,
      0xa9,
      0x80,
      13,
      10,
      13,
      10,
    ]),
  );
  assert.equal(latin.headers.get("x-name"), "caf\u00c3\u00a9\u0080");
  const bad = [
    "GET /sub\r\n\r\n",
    "GET  /sub HTTP/1.1\r\n\r\n",
    "GET /sub HTTP/1.0\r\n\r\n",
    "GET /sub HTTP/1.1\r\nNo colon here\r\n\r\n",
    "GET /sub HTTP/1.1\r\nName : v\r\n\r\n",
    "GET /sub HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",
    "GET /sub HTTP/1.1\r\nA: x\ny\r\n\r\n",
    "G\u00e9T /sub HTTP/1.1\r\n\r\n",
  ];
  for (const text of bad) {
    assert.throws(
      () => parseRequestHead(utf8.encode(text)),
      (err) => err instanceof HandshakeError && err.status === 400,
      JSON.stringify(text),
    );
  }
});

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

function upgradeRequest(
  overrides: Record<string, string | null> = {},
  line = "GET /sub HTTP/1.1",
): string {
  const headers: Record<string, string | null> = {
    Host: "127.0.0.1",
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
    ...overrides,
  };
  let text = `${line}\r\n`;
  for (const [k, v] of Object.entries(headers)) if (v !== null) text += `${k}: ${v}\r\n`;
  return text + "\r\n";
}

interface Exchange {
  /** Everything the server sent, until it closed (or the head ended, on success). */
  response: string;
  /** What the server's first `read` gave: a frame, null, or the error it threw. */
  result: unknown;
  /** Whether the server closed the connection. */
  closed: boolean;
}

/** Sends `request` to a fresh {@linkcode WsWire} and collects its answer. */
async function exchange(request: string | Uint8Array, path?: string): Promise<Exchange> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await listener.accept();
  const wire = new WsWire(server, path === undefined ? {} : { path });
  const reading = wire.read().then((v) => v, (err) => err);
  const bytes = typeof request === "string" ? utf8.encode(request) : request;
  try {
    let at = 0;
    while (at < bytes.length) at += await client.write(bytes.subarray(at));
  } catch {
    // The server may refuse before reading everything.
  }
  let response = "";
  let closed = false;
  const buf = new Uint8Array(4096);
  const decoder = new TextDecoder();
  for (;;) {
    let n: number | null = null;
    try {
      n = await client.read(buf);
    } catch {
      // reset
    }
    if (n === null) {
      closed = true;
      break;
    }
    response += decoder.decode(buf.subarray(0, n), { stream: true });
    if (response.startsWith("HTTP/1.1 101") && response.includes("\r\n\r\n")) break;
  }
  const result = await reading;
  wire.close();
  client.close();
  return { response, result, closed };
}

Deno.test("handshake: a valid upgrade gets 101, and a pipelined first frame is read", async () => {
  const auth = encodeFrame(Op.Auth, 3, utf8.encode('{"mid":1}'));
  const request = concat([
    utf8.encode(
      upgradeRequest(
        { Connection: "keep-alive, Upgrade", Upgrade: "WebSocket" },
        "GET /sub?token=x HTTP/1.1",
      ),
    ),
    masked(WsOpcode.Binary, auth),
  ]);
  const { response, result } = await exchange(request);
  assert.match(response, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(response, /\r\nUpgrade: websocket\r\n/i);
  assert.match(response, /\r\nConnection: Upgrade\r\n/i);
  assert.match(response, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
  const frame = result as { op: number; seq: number; body: Uint8Array };
  assert.equal(frame.op, Op.Auth);
  assert.equal(frame.seq, 3);
  assert.equal(new TextDecoder().decode(frame.body), '{"mid":1}');
});

Deno.test("handshake: malformed upgrade requests get a 4xx and are closed", async () => {
  const cases: [string, string | Uint8Array, number][] = [
    ["missing key", upgradeRequest({ "Sec-WebSocket-Key": null }), 400],
    ["short key", upgradeRequest({ "Sec-WebSocket-Key": "c2hvcnQ=" }), 400],
    ["non-canonical key", upgradeRequest({ "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZR==" }), 400],
    ["wrong version", upgradeRequest({ "Sec-WebSocket-Version": "8" }), 426],
    ["missing version", upgradeRequest({ "Sec-WebSocket-Version": null }), 426],
    ["POST", upgradeRequest({}, "POST /sub HTTP/1.1"), 405],
    ["no Upgrade header", upgradeRequest({ Upgrade: null }), 400],
    ["other upgrade", upgradeRequest({ Upgrade: "h2c" }), 400],
    ["no upgrade in Connection", upgradeRequest({ Connection: "keep-alive" }), 400],
    ["no Host", upgradeRequest({ Host: null }), 400],
    ["wrong path", upgradeRequest({}, "GET /other HTTP/1.1"), 404],
    ["path prefix", upgradeRequest({}, "GET /sub/x HTTP/1.1"), 404],
    ["HTTP/1.0", upgradeRequest({}, "GET /sub HTTP/1.0"), 400],
    ["garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400],
    ["oversized head", `GET /sub HTTP/1.1\r\nX-Big: ${"a".repeat(9000)}\r\n\r\n`, 431],
  ];
  for (const [name, request, status] of cases) {
    const { response, result, closed } = await exchange(request);
    assert.match(response, new RegExp(`^HTTP/1\\.1 ${status} `), name);
    assert.match(response, /\r\nConnection: close\r\n/, name);
    assert.ok(closed, `${name}: the server should close the connection`);
    assert.ok(result instanceof HandshakeError, `${name}: ${result}`);
    assert.equal(result.status, status, name);
    if (status === 426) assert.match(response, /\r\nSec-WebSocket-Version: 13\r\n/);
  }
});

Deno.test("handshake: the path is configurable, and absolute-form targets work", async () => {
  let r = await exchange(
    concat([utf8.encode(upgradeRequest({}, "GET /ws HTTP/1.1")), masked(WsOpcode.Close, "")]),
    "/ws",
  );
  assert.match(r.response, /^HTTP\/1\.1 101 /);
  assert.equal(r.result, null);
  r = await exchange(
    concat([
      utf8.encode(upgradeRequest({}, "GET http://127.0.0.1/sub?x=1 HTTP/1.1")),
      masked(WsOpcode.Close, ""),
    ]),
  );
  assert.match(r.response, /^HTTP\/1\.1 101 /);
  r = await exchange(upgradeRequest({}, "GET /sub HTTP/1.1"), "/ws");
  assert.match(r.response, /^HTTP\/1\.1 404 /);
});

Deno.test("handshake: a peer that leaves mid-head reads as end of stream", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const wire = new WsWire(await listener.accept());
  const reading = wire.read();
  await client.write(utf8.encode("GET /sub HTTP/1.1\r\nHost: x\r\n"));
  client.close();
  assert.equal(await reading, null);
  wire.close();
});

Deno.test("handshake: closing the wire mid-head ends the read", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const wire = new WsWire(await listener.accept());
  const reading = wire.read();
  await client.write(utf8.encode("GET /sub HTTP/1.1\r\n"));
  await new Promise((r) => setTimeout(r, 20));
  wire.close();
  assert.equal(await reading, null);
  assert.equal(await client.read(new Uint8Array(16)), null);
  client.close();
});
