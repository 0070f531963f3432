// Tests of goim over a standard WebSocket object (SocketWire) behind createCometHandler in
// a Deno.serve: Deno's own WebSocket client for what a browser does, a raw client that stops
// reading for backpressure, and a scripted socket for the wire's own mechanics. The sessions
// every transport shares run in transport_conformance_test.ts.
import assert from "node:assert/strict";
import { type CometHandlerOptions, createCometHandler } from "../src/handler.ts";
import { silentLogger } from "../src/log.ts";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { Comet, type CometOptions } from "../src/server/comet.ts";
import { type ConnectRequest, DefaultOperator, type Operator } from "../src/server/operator.ts";
import { SocketWire } from "../src/transport/socket_wire.ts";
import { WebSocketError, WsCloseCode } from "../src/transport/websocket_codec.ts";
import { body, indexOf, pushUntil, range, ROOM, stalledClient } from "./_backpressure.ts";
import { BrowserClient } from "./_browser_client.ts";
import { until } from "./_helpers.ts";
import { goimMessages, Opcode } from "./_ws_client.ts";

const utf8 = new TextEncoder();
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A hub behind createCometHandler in a Deno.serve on a free loopback port. */
class EdgeServer implements AsyncDisposable {
  readonly comet: Comet;
  readonly http: Deno.HttpServer<Deno.NetAddr>;

  constructor(options: CometOptions = {}, handler: CometHandlerOptions = { api: {} }) {
    this.comet = new Comet({ logger: silentLogger, ...options });
    this.http = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      createCometHandler(this.comet, handler),
    );
  }

  get port(): number {
    return this.http.addr.port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/sub`;
  }

  /** Calls the handler's push API; returns status and envelope. */
  async api(
    path: string,
    init: RequestInit = {},
  ): Promise<{ status: number; body: { code: number; message: string } }> {
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`, { method: "POST", ...init });
    return { status: res.status, body: await res.json() };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.comet.close();
    await this.http.shutdown();
  }
}

// ---------------------------------------------------------------- sessions

Deno.test("the handler serves the push API at the same origin, behind its token", async () => {
  await using server = new EdgeServer({}, { api: { token: "tk" } });
  await using a = await BrowserClient.auth(server.url, { key: "a", room_id: "live://p" });
  const pushed = await server.api("/goim/push/room?operation=1000&type=live&room=p", {
    headers: { authorization: "Bearer tk" },
    body: "room",
  });
  assert.equal(pushed.status, 200, pushed.body.message);
  assert.equal(pushed.body.code, 0);
  const f = await a.frame();
  assert.deepEqual([f.op, f.seq, text(f.body)], [1000, 0, "room"]);

  const refused = await server.api("/goim/push/all?operation=1000", { body: "no token" });
  assert.equal(refused.status, 401);
  assert.equal(refused.body.code, -401);
  assert.ok(await a.inbox.silent(100));
});

Deno.test("frames piling up unread past maxPending close the client with 1008", async () => {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const operator = new DefaultOperator();
  const connect = operator.connect.bind(operator);
  // The hub reads nothing while the operator decides on the auth.
  const gated: Operator = {
    async connect(request: ConnectRequest) {
      await gate;
      return connect(request);
    },
  };
  await using server = new EdgeServer({ operator: gated }, { maxPending: 4 });
  await using c = await BrowserClient.open(server.url);
  c.send(Op.Auth, '{"key":"f"}');
  for (let i = 0; i < 5; i++) c.send(Op.Heartbeat);
  await new Promise((r) => setTimeout(r, 100));
  open();
  assert.equal((await c.frame()).op, Op.AuthReply);
  const bye = await c.frame();
  assert.equal(bye.op, Op.DisconnectReply);
  assert.match(text(bye.body), /more than 4 frames/);
  assert.equal((await c.closed).code, WsCloseCode.PolicyViolation);
});

Deno.test("once the hub is closing, upgrades get 503", async () => {
  await using server = new EdgeServer();
  await server.comet.close();
  const res = await fetch(`http://127.0.0.1:${server.port}/sub`, {
    headers: { upgrade: "websocket", connection: "Upgrade" },
  });
  assert.equal(res.status, 503);
  await res.body?.cancel();
});

Deno.test("requests that are not goim upgrades go to the API or get 404", async () => {
  await using comet = new Comet({ logger: silentLogger });
  const info = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    completed: Promise.resolve(),
  } as Deno.ServeHandlerInfo;
  const upgrade = { upgrade: "websocket", connection: "Upgrade" };
  const noApi = createCometHandler(comet);
  let res = await noApi(new Request("http://x/goim/push/all?operation=1000"), info);
  assert.equal(res.status, 404);
  await res.body?.cancel();
  res = await noApi(new Request("http://x/other", { headers: upgrade }), info);
  assert.equal(res.status, 404);
  await res.body?.cancel();
  // An upgrade the runtime refuses (no Sec-WebSocket-Key) is the client's error.
  res = await noApi(new Request("http://x/sub", { headers: upgrade }), info);
  assert.equal(res.status, 400);
  assert.match(await res.text(), /^Bad WebSocket upgrade: /);

  const withApi = createCometHandler(comet, { api: {}, path: "/ws" });
  res = await withApi(new Request("http://x/goim/online/total"), info);
  assert.equal(res.status, 200);
  assert.deepEqual((await res.json()).data, { ip_count: 0, conn_count: 0 });

  assert.throws(() => createCometHandler(comet, { path: "sub" }), TypeError);
  assert.throws(() => createCometHandler(comet, { highWaterMark: -1 }), RangeError);
  assert.throws(
    () => createCometHandler(comet, { highWaterMark: 10, lowWaterMark: 11 }),
    RangeError,
  );
  assert.throws(() => createCometHandler(comet, { maxPending: 0 }), RangeError);
});

// ---------------------------------------------------------------- backpressure

/** Deno's WebSocket client in the room, recording the index of every push. */
async function reader(server: EdgeServer): Promise<BrowserClient & { indices: number[] }> {
  const c = await BrowserClient.auth(server.url, { key: "reader", room_id: ROOM });
  const indices: number[] = [];
  c.ws.onmessage = (e) => {
    for (const f of goimMessages(new Uint8Array(e.data as ArrayBuffer))) indices.push(indexOf(f));
  };
  return Object.assign(c, { indices });
}

Deno.test("a client that stops reading is closed as slow; a reader gets every push", async () => {
  await using server = new EdgeServer({ queueSize: 4, slow: "close", closeGrace: 200 }, {
    highWaterMark: 64 * 1024,
  });
  await using r = await reader(server);
  await using slow = await stalledClient(server.port, "slow");
  assert.equal(server.comet.roomOnline(ROOM), 2);

  const pushed = await pushUntil(
    server.comet,
    r.indices,
    () => server.comet.stats.slowClosed === 1,
  );
  assert.ok(pushed > 4, `closed after ${pushed} pushes`);
  assert.deepEqual(r.indices, range(pushed));
  assert.ok(await until(() => server.comet.connections === 1), "slow client unregistered");
  assert.equal(server.comet.channel("slow"), undefined);
  assert.equal(server.comet.roomOnline(ROOM), 1);
  assert.equal(server.comet.stats.dropped, 0);

  // What the slow client gets, once it reads again, is some first pushes in order, then a close.
  const got: number[] = [];
  for (let m = await slow.next(); m !== null; m = await slow.next()) {
    if (m.opcode === Opcode.Close) break;
    assert.equal(m.opcode, Opcode.Binary);
    for (const f of goimMessages(m.payload)) {
      if (f.op !== Op.DisconnectReply) got.push(indexOf(f));
    }
  }
  assert.deepEqual(got, range(got.length));
  assert.ok(got.length < pushed, `slow client got ${got.length} of ${pushed}`);

  server.comet.pushRoom(ROOM, 1000, body(pushed));
  assert.ok(await until(() => r.indices.length === pushed + 1));
  assert.deepEqual(r.indices, range(pushed + 1));
});

Deno.test("with the drop policy a client that stops reading loses pushes, a reader none", async () => {
  await using server = new EdgeServer({ queueSize: 4, slow: "drop" }, {
    highWaterMark: 64 * 1024,
  });
  await using r = await reader(server);
  await using slow = await stalledClient(server.port, "slow");

  const pushed = await pushUntil(server.comet, r.indices, () => server.comet.stats.dropped >= 3);
  assert.deepEqual(r.indices, range(pushed));
  const dropped = server.comet.stats.dropped;
  assert.equal(server.comet.stats.slowClosed, 0);
  assert.equal(server.comet.connections, 2, "the slow client stays connected");
  const channel = server.comet.channel("slow")!;
  assert.equal(channel.queued, 4, "its queue is full");

  // Once it reads again the stalled write drains and it gets every push not dropped, in order.
  const got: number[] = [];
  const take = async () => {
    const m = await slow.next();
    assert.ok(m, "slow client still connected");
    assert.equal(m.opcode, Opcode.Binary);
    for (const f of goimMessages(m.payload)) got.push(indexOf(f));
  };
  while (channel.queued > 0) await take();
  assert.equal(server.comet.pushRoom(ROOM, 1000, body(pushed)), 2, "room for one more push");
  assert.ok(await until(() => r.indices.length === pushed + 1));
  while (got.at(-1) !== pushed) await take();
  assert.equal(got.length, pushed + 1 - dropped, `${dropped} dropped of ${pushed + 1}`);
  for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, "in order");
  assert.equal(server.comet.stats.dropped, dropped);
});

// ---------------------------------------------------------------- scripted socket

/** Just enough of a WebSocket for SocketWire, driven by the test. */
class FakeSocket extends EventTarget {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = 0;
  binaryType = "blob";
  sent: Uint8Array[] = [];
  closedWith: [number | undefined, string | undefined] | undefined;

  send(data: Uint8Array): void {
    this.sent.push(data.slice());
    this.bufferedAmount += data.length;
  }

  close(code?: number, reason?: string): void {
    this.closedWith = [code, reason];
    this.readyState = WebSocket.CLOSING;
  }

  /** Delivers a message as Deno does with binaryType "arraybuffer": a fresh buffer. */
  receive(data: Uint8Array | string): void {
    this.dispatchEvent(
      new MessageEvent("message", { data: typeof data === "string" ? data : data.slice().buffer }),
    );
  }

  open(): void {
    this.readyState = WebSocket.OPEN;
    this.dispatchEvent(new Event("open"));
  }

  end(): void {
    this.readyState = WebSocket.CLOSED;
    this.dispatchEvent(new Event("error"));
    this.dispatchEvent(new CloseEvent("close", { code: 1006 }));
  }
}

function wireOn(socket: FakeSocket, options = {}): SocketWire {
  return new SocketWire(socket as unknown as WebSocket, options);
}

/** Whether `promise` is still pending after `ms`. */
async function pending(promise: Promise<unknown>, ms = 80): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  await new Promise((r) => setTimeout(r, ms));
  return !settled;
}

/** Whether `promise` settles within `ms`; a ref'd timer keeps the event loop alive meanwhile. */
async function settles(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("write sends each top-level frame as its own message", async () => {
  const socket = new FakeSocket();
  const wire = wireOn(socket);
  assert.equal(socket.binaryType, "arraybuffer");
  const auth = encodeFrame(Op.AuthReply, 1);
  const a = encodeFrame(1000, 0, utf8.encode("a"));
  const b = encodeFrame(1001, 0, utf8.encode("bb"));
  const data = wire.encode([auth, a, b], 3, auth.length + a.length + b.length);
  await wire.write(data);
  assert.equal(socket.sent.length, 2);
  assert.deepEqual(socket.sent[0], auth);
  assert.deepEqual(goimMessages(socket.sent[1]!).map((f) => [f.op, text(f.body)]), [
    [1000, "a"],
    [1001, "bb"],
  ]);
  wire.close();
  assert.deepEqual(socket.closedWith, [1000, ""]);
  wire.close();
  await assert.rejects(wire.write(data), Deno.errors.BadResource);
});

Deno.test("a write stalls above the high-water mark until the poller sees the low-water mark", async () => {
  const socket = new FakeSocket();
  const wire = wireOn(socket, { highWaterMark: 100, lowWaterMark: 40 });
  const frame = encodeFrame(1000, 0, new Uint8Array(84)); // 100 bytes: at the mark, not above
  await wire.write(frame);
  const stalled = wire.write(frame);
  assert.ok(await pending(stalled), "above the high-water mark");
  socket.bufferedAmount = 41;
  assert.ok(await pending(stalled), "above the low-water mark");
  socket.bufferedAmount = 40;
  // The poller's timer is unref'd (a real congested socket keeps the process alive): hold a
  // ref'd one meanwhile.
  assert.ok(await settles(stalled, 500), "woken at the low-water mark");

  // Closing fails a stalled write, and the poller stops with the last congested socket.
  const again = wire.write(frame);
  assert.ok(await pending(again, 30));
  wire.close();
  await assert.rejects(again, Deno.errors.BadResource);

  const other = new FakeSocket();
  const peer = wireOn(other, { highWaterMark: 0 });
  const gone = peer.write(frame);
  other.end();
  await assert.rejects(gone, Deno.errors.BadResource);
  assert.equal(await peer.read(), null);
});

Deno.test("reads come in order; the peer's close ends them; violations carry close codes", async () => {
  const socket = new FakeSocket();
  const wire = wireOn(socket, { maxPending: 2, maxBody: 8 });
  socket.receive(encodeFrame(Op.Heartbeat, 1));
  socket.receive(encodeFrame(Op.Heartbeat, 2));
  assert.equal((await wire.read())?.seq, 1);
  const waiting = wire.read();
  assert.equal((await waiting)?.seq, 2);
  const next = wire.read();
  socket.receive(encodeFrame(Op.SendMsg, 3, utf8.encode("hi")));
  const f = await next;
  assert.deepEqual([f?.op, f?.seq, text(f!.body)], [Op.SendMsg, 3, "hi"]);

  // A third unread frame is a flood.
  for (let i = 0; i < 3; i++) socket.receive(encodeFrame(Op.Heartbeat, i));
  const err = await wire.read().catch((e) => e);
  assert.ok(err instanceof WebSocketError);
  assert.equal(err.code, WsCloseCode.PolicyViolation);
  wire.close();
  assert.equal(socket.closedWith?.[0], WsCloseCode.PolicyViolation);
  assert.match(socket.closedWith?.[1] ?? "", /more than 2 frames/);
  assert.equal(await wire.read().catch((e) => e), err);

  for (
    const [data, code] of [
      ["text", WsCloseCode.UnsupportedData],
      [encodeFrame(1, 0, new Uint8Array(9)), WsCloseCode.MessageTooBig],
      [new Uint8Array(15), WsCloseCode.ProtocolError],
    ] as const
  ) {
    const s = new FakeSocket();
    const w = wireOn(s, { maxBody: 8 });
    const read = w.read();
    s.receive(data);
    await assert.rejects(read, (e) => e instanceof WebSocketError && e.code === code);
    w.close();
    assert.equal(s.closedWith?.[0], code);
  }

  const s = new FakeSocket();
  const w = wireOn(s);
  const read = w.read();
  s.end();
  assert.equal(await read, null);
  w.close();
  assert.equal(s.closedWith, undefined, "a closed socket is not closed again");
});

Deno.test("a close while the socket is connecting takes effect when it opens", async () => {
  const socket = new FakeSocket();
  socket.readyState = WebSocket.CONNECTING;
  const wire = wireOn(socket, {
    remoteAddr: { hostname: "10.0.0.1", port: 5 },
    headers: new Headers({ origin: "https://example.com" }),
    transport: "edge",
  });
  assert.deepEqual(wire.info.remoteAddr, { hostname: "10.0.0.1", port: 5 });
  assert.equal(wire.info.headers?.get("origin"), "https://example.com");
  assert.equal(wire.info.transport, "edge");
  // A goodbye written before the socket opens has nowhere to go.
  await wire.write(encodeFrame(Op.DisconnectReply, 0));
  assert.equal(socket.sent.length, 0);
  wire.close();
  assert.equal(socket.closedWith, undefined);
  assert.equal(await wire.read(), null);
  socket.open();
  assert.deepEqual(socket.closedWith, [1000, ""]);
});
