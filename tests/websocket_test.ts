// Integration tests of what only the WebSocket listener has, on real loopback sockets: Deno's
// own WebSocket client for what a browser does, and a raw client for what a browser cannot
// (pings, fragments, unmasked frames, pipelining). The sessions every transport shares run
// in transport_conformance_test.ts.
import assert from "node:assert/strict";
import { encodeFrame, type Frame, HEADER_SIZE } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { Comet, type CometOptions } from "../src/server/comet.ts";
import { silentLogger } from "../src/log.ts";
import type { Acceptor } from "../src/transport/acceptor.ts";
import { listenWs, WsWire } from "../src/transport/websocket.ts";
import { encodeWsFrame, WsCloseCode, WsOpcode } from "../src/transport/websocket_codec.ts";
import { WebSocketParser } from "../src/transport/websocket_parser.ts";
import { BrowserClient, Inbox } from "./_browser_client.ts";
import { concat } from "./_bytes.ts";
import { FrameRecorder, until, wirePair } from "./_helpers.ts";

const utf8 = new TextEncoder();
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const MASK = new Uint8Array([9, 8, 7, 6]);

/** A hub and a WebSocket acceptor on a free loopback port. */
class Server implements AsyncDisposable {
  readonly comet: Comet;
  readonly acceptor: Acceptor;

  constructor(options: CometOptions = {}, path?: string) {
    this.comet = new Comet({ logger: silentLogger, ...options });
    this.acceptor = listenWs(this.comet, {
      hostname: "127.0.0.1",
      port: 0,
      ...(path === undefined ? {} : { path }),
    });
  }

  get port(): number {
    return this.acceptor.addr.port;
  }

  /** The WebSocket URL of `path` on this server. */
  url(path = "/sub"): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.acceptor[Symbol.asyncDispose]();
    await this.comet.close();
  }
}

/** Reads the one goim frame a message must be. */
function oneFrame(data: Uint8Array): Frame {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  assert.ok(data.length >= HEADER_SIZE, `message of ${data.length} bytes`);
  assert.equal(view.getInt32(0), data.length, "a message holds exactly one frame");
  assert.equal(view.getInt16(4), HEADER_SIZE);
  return {
    ver: view.getInt16(6),
    op: view.getInt32(8),
    seq: view.getInt32(12),
    body: data.slice(HEADER_SIZE),
  };
}

/** Walks the frames back to back in an op-9 body, as goim's JS client does. */
function innerFrames(body: Uint8Array): Frame[] {
  const out: Frame[] = [];
  for (let at = 0; at < body.length;) {
    const view = new DataView(body.buffer, body.byteOffset + at);
    const packLen = view.getInt32(0);
    out.push(oneFrame(body.subarray(at, at + packLen)));
    at += packLen;
  }
  return out;
}

interface WsEventRecord {
  op: number;
  payload: Uint8Array;
  code?: number;
  reason?: string;
}

/** A WebSocket client over raw TCP that can do what browsers cannot. */
class RawClient implements AsyncDisposable {
  readonly conn: Deno.TcpConn;
  readonly inbox = new Inbox<WsEventRecord>();
  #parser: WebSocketParser;
  #reading: Promise<void>;
  #paused: Promise<void> | undefined;
  #resume: (() => void) | undefined;
  seq = 0;

  private constructor(conn: Deno.TcpConn, rest: Uint8Array, maxMessage: number) {
    this.conn = conn;
    this.#parser = new WebSocketParser({ masked: false, maxMessage });
    this.#parser.push(rest);
    this.#drain();
    this.#reading = this.#read();
  }

  /** Connects, upgrades with `extraHeaders`, and optionally sends `first` in the same write. */
  static async connect(
    port: number,
    extraHeaders = "",
    first: Uint8Array = new Uint8Array(0),
    maxMessage = 1 << 20,
  ): Promise<RawClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const head = utf8.encode(
      "GET /sub HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
        extraHeaders + "\r\n",
    );
    const request = new Uint8Array(head.length + first.length);
    request.set(head);
    request.set(first, head.length);
    await conn.write(request);
    const buf = new Uint8Array(4096);
    let len = 0;
    for (;;) {
      const n = await conn.read(buf.subarray(len));
      if (n === null) throw new Error("Closed during the handshake");
      len += n;
      const end = text(buf.subarray(0, len)).indexOf("\r\n\r\n");
      if (end >= 0) {
        const response = text(buf.subarray(0, end));
        assert.match(response, /^HTTP\/1\.1 101 /);
        return new RawClient(conn, buf.slice(end + 4, len), maxMessage);
      }
    }
  }

  #drain(): void {
    for (let op = this.#parser.next(); op !== undefined; op = this.#parser.next()) {
      const e: WsEventRecord = { op, payload: this.#parser.payload.slice() };
      if (op === WsOpcode.Close) {
        e.code = this.#parser.closeCode;
        e.reason = this.#parser.closeReason;
      }
      this.inbox.put(e);
    }
  }

  async #read(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        await this.#paused;
        const n = await this.conn.read(buf);
        if (n === null) break;
        this.#parser.push(buf.subarray(0, n));
        this.#drain();
      }
    } catch {
      // reset or closed
    }
    this.inbox.end();
  }

  /** Stops reading after the read under way, so the server's writes back up. */
  pause(): void {
    this.#paused ??= new Promise((resolve) => (this.#resume = resolve));
  }

  resume(): void {
    this.#resume?.();
    this.#paused = this.#resume = undefined;
  }

  async write(bytes: Uint8Array): Promise<void> {
    try {
      let at = 0;
      while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
    } catch {
      // the server may have closed us
    }
  }

  /** Sends a goim frame as one masked binary message; returns its seq. */
  async send(op: number, body: Uint8Array | string = "", seq = ++this.seq): Promise<number> {
    const frame = encodeFrame(op, seq, typeof body === "string" ? utf8.encode(body) : body);
    await this.write(encodeWsFrame(WsOpcode.Binary, frame, { mask: MASK }));
    return seq;
  }

  async frame(): Promise<Frame> {
    const e = await this.inbox.take();
    assert.equal(e.op, WsOpcode.Binary, `expected a binary message, got opcode ${e.op}`);
    return oneFrame(e.payload);
  }

  /** Skips messages until a close frame; resolves with it. */
  async closeFrame(): Promise<WsEventRecord> {
    for (;;) {
      const e = await this.inbox.take();
      if (e.op === WsOpcode.Close) return e;
    }
  }

  /** Resolves true once the server has closed the TCP connection. */
  async closedByServer(): Promise<boolean> {
    try {
      for (;;) await this.inbox.take();
    } catch (err) {
      return (err as Error).message === "Connection closed";
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.resume();
    try {
      this.conn.close();
    } catch {
      // already closed
    }
    await this.#reading;
  }
}

// ---------------------------------------------------------------- browser client

Deno.test("a custom path is served, others get 404", async () => {
  await using server = new Server({}, "/goim");
  await using c = await BrowserClient.open(server.url("/goim"));
  c.send(Op.Auth, "{}");
  assert.equal((await c.frame()).op, Op.AuthReply);
  const res = await fetch(`http://127.0.0.1:${server.port}/sub`);
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

// ---------------------------------------------------------------- raw client

Deno.test("pings are answered with pongs, and a pipelined auth is read", async () => {
  await using server = new Server();
  const auth = encodeFrame(Op.Auth, 1, utf8.encode('{"key":"r1"}'));
  await using c = await RawClient.connect(
    server.port,
    "",
    encodeWsFrame(WsOpcode.Binary, auth, { mask: MASK }),
  );
  assert.equal((await c.frame()).op, Op.AuthReply);
  await c.write(encodeWsFrame(WsOpcode.Ping, utf8.encode("are you there"), { mask: MASK }));
  const pong = await c.inbox.take();
  assert.equal(pong.op, WsOpcode.Pong);
  assert.equal(text(pong.payload), "are you there");
  // Pongs the client volunteers are ignored.
  await c.write(encodeWsFrame(WsOpcode.Pong, utf8.encode("x"), { mask: MASK }));
  const seq = await c.send(Op.Heartbeat);
  const hb = await c.frame();
  assert.equal(hb.op, Op.HeartbeatReply);
  assert.equal(hb.seq, seq);
});

Deno.test("a fragmented auth with a ping in between is reassembled", async () => {
  await using server = new Server();
  await using c = await RawClient.connect(server.port);
  const auth = encodeFrame(Op.Auth, 9, utf8.encode('{"key":"r2","room_id":"live://r"}'));
  await c.write(encodeWsFrame(WsOpcode.Binary, auth.subarray(0, 10), { mask: MASK, fin: false }));
  await c.write(encodeWsFrame(WsOpcode.Ping, utf8.encode("p"), { mask: MASK }));
  await c.write(encodeWsFrame(WsOpcode.Continuation, auth.subarray(10), { mask: MASK }));
  const pong = await c.inbox.take();
  assert.equal(pong.op, WsOpcode.Pong);
  const reply = await c.frame();
  assert.equal(reply.op, Op.AuthReply);
  assert.equal(reply.seq, 9);
  assert.equal(server.comet.channel("r2")?.room, "live://r");
});

Deno.test("an unmasked frame closes that client with 1002; others keep receiving", async () => {
  await using server = new Server();
  await using good = await BrowserClient.auth(server.url(), { key: "g", room_id: "live://x" });
  await using bad = await RawClient.connect(server.port);
  await bad.send(Op.Auth, '{"key":"b","room_id":"live://x"}');
  assert.equal((await bad.frame()).op, Op.AuthReply);
  await bad.write(encodeWsFrame(WsOpcode.Binary, encodeFrame(Op.Heartbeat, 2)));
  const f = await bad.frame();
  assert.equal(f.op, Op.DisconnectReply);
  assert.match(text(f.body), /not masked/);
  const close = await bad.closeFrame();
  assert.equal(close.code, WsCloseCode.ProtocolError);
  assert.match(close.reason!, /not masked/);
  assert.ok(await bad.closedByServer());
  assert.ok(await until(() => server.comet.connections === 1));
  assert.equal(server.comet.pushRoom("live://x", 1000, utf8.encode("still here")), 1);
  const g = await good.frame();
  assert.deepEqual([g.op, text(g.body)], [1000, "still here"]);
});

Deno.test("a pong waits for a write under way instead of cutting into it", async () => {
  await using server = new Server();
  await using c = await RawClient.connect(server.port, "", new Uint8Array(0), 32 << 20);
  await c.send(Op.Auth, '{"key":"r6","room_id":"live://big"}');
  assert.equal((await c.frame()).op, Op.AuthReply);
  // Far more than loopback socket buffers hold (a few MiB) while the client is not reading,
  // so the write is still under way, in several pieces, when the ping comes in.
  c.pause();
  const body = new Uint8Array(256 * 1024).fill(7);
  for (let i = 0; i < 80; i++) server.comet.pushRoom("live://big", 1000, body);
  await new Promise((r) => setTimeout(r, 50));
  await c.write(encodeWsFrame(WsOpcode.Ping, utf8.encode("mid-write"), { mask: MASK }));
  await new Promise((r) => setTimeout(r, 50));
  c.resume();
  // Each 256 KiB push is a write of its own (writes stop at 64 KiB but take one frame whole):
  // the pong may come between two of them, never inside one.
  let pushes = 0;
  let pong: string | undefined;
  while (pushes < 80 || pong === undefined) {
    const message = await c.inbox.take(10_000);
    if (message.op === WsOpcode.Pong) {
      pong = text(message.payload);
      continue;
    }
    const frame = oneFrame(message.payload);
    const frames = frame.op === Op.Raw ? innerFrames(frame.body) : [frame];
    assert.ok(frames.every((f) => f.op === 1000 && f.body.length === body.length));
    pushes += frames.length;
  }
  assert.equal(pushes, 80);
  assert.equal(pong, "mid-write");
});

Deno.test("the handshake deadline covers the HTTP head", async () => {
  await using server = new Server({ handshakeTimeout: 100 });
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await conn.write(utf8.encode("GET /sub HTTP/1.1\r\nHost: x\r\n"));
  const started = Date.now();
  assert.equal(await conn.read(new Uint8Array(64)), null);
  assert.ok(Date.now() - started < 2000);
  assert.ok(await until(() => server.comet.stats.handshakeTimeouts === 1));
  assert.equal(server.comet.handshaking, 0);
});

Deno.test("shutdown closes a connection still in its HTTP handshake at once", async () => {
  await using server = new Server();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await conn.write(utf8.encode("GET /sub HTTP/1.1\r\n"));
  assert.ok(await until(() => server.comet.handshaking === 1));
  const started = Date.now();
  await server.comet.close();
  assert.ok(Date.now() - started < 1000);
  // Nothing was written to a peer that never upgraded: not op 6, not a close frame.
  assert.equal(await conn.read(new Uint8Array(64)), null);
});

Deno.test("a refused upgrade counts as a protocol error", async () => {
  await using server = new Server();
  const res = await fetch(`http://127.0.0.1:${server.port}/sub`);
  assert.equal(res.status, 400);
  assert.equal(res.headers.get("connection"), "close");
  await res.body?.cancel();
  assert.ok(await until(() => server.comet.stats.protocolErrors === 1));
});

// ---------------------------------------------------------------- encode

Deno.test("encode: one frame, an op-9 batch, and op 6 followed by a close frame", () => {
  const conn = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } };
  const wire = new WsWire(conn as unknown as Deno.Conn, { upgraded: { headers: new Headers() } });
  const a = encodeFrame(1000, 0, utf8.encode("a"));
  const b = encodeFrame(1001, 0, new Uint8Array(200));
  const parser = new WebSocketParser({ masked: false, maxMessage: 1 << 20 });

  parser.push(wire.encode([a], 1, a.length));
  assert.equal(parser.next(), WsOpcode.Binary);
  assert.deepEqual(parser.payload, a);

  const out = wire.encode([a, b, a], 3, 2 * a.length + b.length);
  assert.equal(out.length, 4 + 16 + 2 * a.length + b.length, "16-bit length header");
  parser.push(out);
  assert.equal(parser.next(), WsOpcode.Binary);
  const outer = oneFrame(parser.payload);
  assert.equal(outer.op, Op.Raw);
  assert.deepEqual(innerFrames(outer.body).map((f) => f.op), [1000, 1001, 1000]);

  const bye = encodeFrame(Op.DisconnectReply, 0, utf8.encode("bye"));
  parser.push(wire.encode([a, bye], 2, a.length + bye.length));
  assert.equal(parser.next(), WsOpcode.Binary);
  assert.deepEqual(parser.payload, a);
  assert.equal(parser.next(), WsOpcode.Binary);
  assert.deepEqual(parser.payload, bye);
  assert.equal(parser.next(), WsOpcode.Close);
  assert.equal(parser.closeCode, 1000);
  assert.equal(parser.next(), undefined);
});

Deno.test("encode keeps replies out of op-9 batches so goim clients see them", () => {
  const conn = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } };
  const wire = new WsWire(conn as unknown as Deno.Conn, { upgraded: { headers: new Headers() } });
  const auth = encodeFrame(Op.AuthReply, 1);
  const push = encodeFrame(1000, 0, utf8.encode("p"));
  const heart = encodeFrame(Op.HeartbeatReply, 2, new Uint8Array(4));
  const frames = [auth, push, push, heart, push];
  const bytes = frames.reduce((n, f) => n + f.length, 0);
  const parser = new WebSocketParser({ masked: false, maxMessage: 1 << 20 });
  parser.push(wire.encode(frames, frames.length, bytes));
  const ops: number[] = [];
  for (let e = parser.next(); e !== undefined; e = parser.next()) {
    assert.equal(e, WsOpcode.Binary);
    const outer = oneFrame(parser.payload);
    ops.push(outer.op);
    if (outer.op === Op.Raw) {
      assert.deepEqual(innerFrames(outer.body).map((f) => f.op), [1000, 1000]);
    }
  }
  assert.deepEqual(ops, [Op.AuthReply, Op.Raw, Op.HeartbeatReply, 1000]);
});

// ---------------------------------------------------------------- read buffers

Deno.test("WebSocket wire gives its read buffer back once closed, not while its read is pending", async () => {
  const pool = WsWire.readBuffers;
  const before = pool.used;
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const wire = new WsWire(await listener.accept(), { upgraded: { headers: new Headers() } });
  try {
    const read = wire.read();
    assert.equal(pool.used, before + 1, "the pending read holds a buffer");
    wire.close();
    assert.equal(pool.used, before + 1, "the runtime may still write into it");
    assert.equal(await read, null);
    assert.equal(pool.used, before);
  } finally {
    wire.close();
    client.close();
  }
});

// ---------------------------------------------------------------- listening

/** An upgraded WsWire over a loopback pair, and the raw client socket. */
const wsPair = () => wirePair((conn) => new WsWire(conn, { upgraded: { headers: new Headers() } }));

const masked = (op: number, seq = 1) =>
  encodeWsFrame(WsOpcode.Binary, encodeFrame(op, seq), { mask: MASK });
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

Deno.test("listening WebSocket wire hands over buffered frames, answers pings between them, and ends once", async () => {
  using p = await wsPair();
  const ping = encodeWsFrame(WsOpcode.Ping, utf8.encode("hi"), { mask: MASK });
  await p.client.write(concat([masked(Op.Auth), masked(Op.Heartbeat), ping, masked(Op.Sub)]));
  assert.equal((await p.wire.read())?.op, Op.Auth);
  const reader = new FrameRecorder();
  p.wire._listen(reader);
  await settle();
  assert.deepEqual(reader.ops, [Op.Heartbeat, Op.Sub], "the ping is answered, not handed over");
  const parser = new WebSocketParser({ maxMessage: 1 << 16, masked: false });
  const buf = new Uint8Array(256);
  parser.push(buf.subarray(0, (await p.client.read(buf))!));
  assert.equal(parser.next(), WsOpcode.Pong);
  assert.equal(text(parser.payload), "hi");
  await p.client.write(encodeWsFrame(WsOpcode.Close, new Uint8Array([3, 232]), { mask: MASK }));
  await reader.done;
  await settle();
  assert.deepEqual(reader.ended, [undefined], "the peer's close ends it, once, with no error");
});

Deno.test("listening WebSocket wire waits while its reader is busy, stops when told, reports errors", async () => {
  {
    using p = await wsPair();
    const reader = new FrameRecorder();
    const busy = Promise.withResolvers<boolean>();
    reader.answer = (op) => op === Op.SendMsg ? busy.promise : op !== Op.Unsub;
    p.wire._listen(reader);
    await p.client.write(
      concat([masked(Op.SendMsg), masked(Op.Sub), masked(Op.Unsub), masked(Op.Heartbeat)]),
    );
    await settle();
    assert.deepEqual(reader.ops, [Op.SendMsg], "nothing while the reader is busy");
    busy.resolve(true);
    await settle();
    assert.deepEqual(reader.ops, [Op.SendMsg, Op.Sub, Op.Unsub], "stops at false");
    p.client.close();
    await settle();
    assert.deepEqual(reader.ended, [], "a reader that said stop hears nothing more");
  }
  {
    using p = await wsPair();
    const reader = new FrameRecorder();
    p.wire._listen(reader);
    // Unmasked: a client's frames must be masked.
    await p.client.write(encodeWsFrame(WsOpcode.Binary, encodeFrame(Op.Heartbeat, 1)));
    await reader.done;
    assert.equal(reader.ended.length, 1);
    assert.match(String(reader.ended[0]), /mask/i);
  }
});
