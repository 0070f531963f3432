// The WebSocket opening handshake: the accept key and the request head parser,
// then whole upgrades over real loopback sockets.
import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { WsWire } from "../src/transport/websocket.ts";
import { encodeWsFrame, WsOpcode } from "../src/transport/websocket_codec.ts";
import {
  HandshakeError,
  parseRequestHead,
  websocketAccept,
} from "../src/transport/ws_handshake.ts";
import { concat } from "./_bytes.ts";

const utf8 = new TextEncoder();
const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);

/** A frame as a client sends it: masked. */
function masked(opcode: number, payload: Uint8Array | string): Uint8Array {
  const bytes = typeof payload === "string" ? utf8.encode(payload) : payload;
  return encodeWsFrame(opcode, bytes, { mask: MASK });
}

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
