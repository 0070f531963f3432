// The goim client (src/client/) against real servers: TCP, WebSocket, TLS and a browser.
import assert from "node:assert/strict";
import {
  AuthError,
  type Client,
  connect,
  ConnectionClosedError,
  type Frame,
  MessageStream,
  Op,
  type Operator,
  parseGoimAuth,
  RequestTimeoutError,
  type StateChange,
} from "../mod.ts";
import { FrameDecoder } from "../src/protocol/decoder.ts";
import { encodeFrame } from "../src/protocol/frame.ts";
import { reconnectDelay, reconnectPolicy } from "../src/reconnect/backoff.ts";
import type { CometServer } from "../src/serve.ts";
import { api, startServer, text, until, utf8 } from "./_helpers.ts";
import { Chromium, findChromium } from "./_chromium.ts";
import { ROOT } from "./_process.ts";
import { makeCertificate, opensslAvailable } from "./_tls.ts";

const tcpUrl = (server: CometServer) => `tcp://127.0.0.1:${server.addrs.tcp!.port}`;
const wsUrl = (server: CometServer) => `ws://127.0.0.1:${server.addrs.ws!.port}/sub`;
const TRANSPORTS = [["tcp", tcpUrl], ["ws", wsUrl]] as const;

/** `promise`, or a rejection after `ms`; the timer is cleared either way. */
async function within<T>(promise: Promise<T>, ms = 3_000, what = "a result"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function nextPush(stream: MessageStream<Frame>): Promise<Frame> {
  const result = await within(stream.next(), 3_000, "a push");
  assert.ok(!result.done, "stream ended");
  return result.value;
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A raw goim server on loopback whose answers the test scripts: `onFrame` gets
 * each frame with the connection and its number (1 for the first).
 */
class FakeServer implements AsyncDisposable {
  readonly conns: Deno.Conn[] = [];
  #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  #sessions: Promise<void>[] = [];
  #accepting: Promise<void>;

  constructor(onFrame: (conn: Deno.Conn, n: number, frame: Frame) => Promise<void> | void) {
    this.#accepting = (async () => {
      try {
        for await (const conn of this.#listener) {
          this.conns.push(conn);
          this.#sessions.push(FakeServer.#serve(conn, this.conns.length, onFrame));
        }
      } catch {
        // The listener was closed.
      }
    })();
  }

  get url(): string {
    return `tcp://127.0.0.1:${this.#listener.addr.port}`;
  }

  static async #serve(
    conn: Deno.Conn,
    n: number,
    onFrame: (conn: Deno.Conn, n: number, frame: Frame) => Promise<void> | void,
  ): Promise<void> {
    const decoder = new FrameDecoder();
    const buf = new Uint8Array(4096);
    try {
      for (let got = await conn.read(buf); got !== null; got = await conn.read(buf)) {
        for (const frame of decoder.decode(buf.subarray(0, got))) await onFrame(conn, n, frame);
      }
    } catch {
      // Closed by the script, the client or the end of the test.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const conn of this.conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await Promise.all(this.#sessions);
  }
}

/** goim's auth, plus an upstream handler whose replies the test holds until it releases them. */
function holdingOperator(): { operator: Operator; release(): void; held(): number } {
  let released = false;
  const waiting: (() => void)[] = [];
  return {
    operator: {
      connect: ({ body }) => parseGoimAuth(body),
      receive: () =>
        released ? undefined : new Promise<undefined>((resolve) => {
          waiting.push(() => resolve(undefined));
        }),
    },
    release() {
      released = true;
      for (const resolve of waiting.splice(0)) resolve();
    },
    held: () => waiting.length,
  };
}

Deno.test("client connects over tcp and ws, authenticates and receives room pushes", async () => {
  await using server = startServer();
  for (const [kind, url] of TRANSPORTS) {
    const key = `basic-${kind}`;
    await using client = await connect(url(server), {
      mid: 7,
      key,
      roomId: "live://basic",
      platform: "test",
      accepts: [1000],
    });
    assert.equal(client.state, "open");
    const channel = server.comet.channel(key);
    assert.ok(channel, `${kind}: server knows the key`);
    assert.equal(channel.mid, 7);
    assert.equal(channel.platform, "test");
    assert.equal(channel.room, "live://basic");

    const stream = client.messages();
    const seen: string[] = [];
    const off = client.on(1000, (frame) => seen.push(text(frame.body)));

    assert.equal(server.comet.pushRoom("live://basic", 1000, utf8.encode("hello")), 1);
    const push = await nextPush(stream);
    assert.equal(push.op, 1000);
    assert.equal(push.seq, 0);
    assert.equal(text(push.body), "hello");
    assert.deepEqual(seen, ["hello"]);

    const res = await api(server, "/goim/push/room?operation=1001&type=live&room=basic", {
      method: "POST",
      body: "via api",
    });
    assert.equal(res.body.code, 0);
    const viaApi = await nextPush(stream);
    assert.deepEqual([viaApi.op, text(viaApi.body)], [1001, "via api"]);

    // Pushed in one turn: the server flushes them together, over WebSocket as one op-9 batch.
    off();
    for (const n of [1, 2, 3]) server.comet.pushRoom("live://basic", 1000, utf8.encode(`b${n}`));
    const batch = [await nextPush(stream), await nextPush(stream), await nextPush(stream)];
    assert.deepEqual(batch.map((f) => text(f.body)), ["b1", "b2", "b3"]);
    assert.deepEqual(seen, ["hello"], "on() handler is removed");
    if (kind === "ws") assert.equal(client.stats.batches, 1);
    else assert.equal(client.stats.batches, 0, "TCP carries batches as plain frames");

    // Heartbeat replies report the room's online count.
    assert.ok(await until(() => client.online === 1), `${kind}: online count`);
  }
});

Deno.test("2,000 concurrent requests each get their own reply amid pushes", async () => {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const replyOrder: number[] = [];
  const operator: Operator = {
    connect: ({ body }) => parseGoimAuth(body),
    // Replies later, from a timer, so they leave in a different order than the requests came.
    receive(channel, frame) {
      const body = "re:" + text(frame.body);
      const timer = setTimeout(() => {
        timers.delete(timer);
        replyOrder.push(frame.seq);
        channel.send(Op.SendMsgReply, body, frame.seq, frame.ver);
      }, Math.random() * 5);
      timers.add(timer);
      return undefined;
    },
  };
  // Replies come in bursts from timers; the default queue (128) would close the client as slow.
  await using server = startServer({ operator, queueSize: 8192 });
  for (const [kind, url] of TRANSPORTS) {
    replyOrder.length = 0;
    const key = `many-${kind}`;
    await using client = await connect(url(server), {
      mid: 1,
      key,
      roomId: "live://many",
      accepts: [1001],
    });
    let roomPushes = 0;
    let keyPushes = 0;
    client.on(1000, () => roomPushes++);
    client.on(1001, () => keyPushes++);
    const requests: Promise<Uint8Array>[] = [];
    for (let i = 0; i < 2000; i++) {
      requests.push(client.request(`${kind}-${i}`));
      if (i % 100 === 0) {
        assert.equal(server.comet.pushRoom("live://many", 1000, utf8.encode(`room ${i}`)), 1);
        assert.equal(server.comet.pushKeys([key], 1001, utf8.encode(`key ${i}`)), 1);
        await delay(0);
      }
    }
    assert.ok(client.pending > 0);
    const replies = await within(Promise.all(requests), 15_000, "2,000 replies");
    replies.forEach((reply, i) => assert.equal(text(reply), `re:${kind}-${i}`));
    assert.equal(client.pending, 0);
    assert.ok(
      replyOrder.some((seq, i) => i > 0 && seq < replyOrder[i - 1]!),
      `${kind}: replies came back out of order`,
    );
    assert.ok(await until(() => roomPushes === 20 && keyPushes === 20), `${kind}: pushes arrived`);
  }
  assert.equal(timers.size, 0);
});

Deno.test("client reconnects by itself after the server restarts and restores its state", async () => {
  let server = startServer();
  const { tcp, ws, api: apiAddr } = server.addrs;
  const local = (port: number) => ({ hostname: "127.0.0.1", port });
  const reconnect = { initialDelay: 20, maxDelay: 100 };
  const client = await connect(tcpUrl(server), {
    mid: 5,
    key: "restart",
    roomId: "live://a",
    accepts: [1000, 1002],
    reconnect,
  });
  const queued = await connect(wsUrl(server), {
    mid: 6,
    key: "restart-queued",
    reconnect,
    queueWhileReconnecting: true,
  });
  try {
    const states: string[] = [];
    client.onState((change: StateChange) => states.push(change.state));
    await client.sub([1001]);
    await client.unsub([1002]);
    await client.changeRoom("live://b");
    assert.equal(server.comet.pushKeys(["restart"], 1002, utf8.encode("x")), 0);

    await server.shutdown();
    assert.ok(await until(() => client.state === "reconnecting"), "client noticed the drop");
    // Fail fast while reconnecting, unless the client queues.
    await assert.rejects(client.request("too early"), (err: Error) => {
      assert.ok(err instanceof ConnectionClosedError);
      assert.match(err.message, /not open: the client is reconnecting/);
      return true;
    });
    assert.throws(() => client.send(1000, "x"), ConnectionClosedError);
    const waited = queued.request("queued while down");

    server = startServer({ tcp: local(tcp!.port), ws: local(ws!.port), api: local(apiAddr!.port) });
    assert.ok(await until(() => client.state === "open", 5_000), "client reopened");
    assert.equal(text(await within(waited, 5_000, "the queued request")), "queued while down");
    assert.deepEqual(states, ["reconnecting", "open"]);
    assert.equal(client.stats.reconnects, 1);

    const channel = server.comet.channel("restart");
    assert.ok(channel, "re-authenticated with the same key");
    assert.equal(channel.mid, 5);
    assert.equal(channel.room, "live://b");
    assert.deepEqual(channel.watched().sort(), [1000, 1001]);

    const stream = client.messages();
    assert.equal(server.comet.pushKeys(["restart"], 1002, utf8.encode("unsubbed")), 0);
    assert.equal(server.comet.pushKeys(["restart"], 1001, utf8.encode("subbed")), 1);
    assert.equal(server.comet.pushRoom("live://b", 1000, utf8.encode("room b")), 1);
    assert.deepEqual(text((await nextPush(stream)).body), "subbed");
    assert.deepEqual(text((await nextPush(stream)).body), "room b");
    assert.equal(text(await client.request("after restart")), "after restart");
  } finally {
    await client.close();
    await queued.close();
    await server.shutdown();
  }
});

Deno.test("heartbeats keep an idle connection open past the server's heartbeat timeout", async () => {
  await using server = startServer({ heartbeatTimeout: 300 });
  await using client = await connect(tcpUrl(server), {
    mid: 1,
    key: "idle",
    roomId: "live://idle",
    heartbeat: 100,
  });
  await delay(1_000);
  assert.equal(client.state, "open");
  assert.equal(client.stats.opens, 1);
  assert.equal(client.stats.reconnects, 0);
  assert.equal(client.stats.missedHeartbeats, 0);
  assert.equal(server.comet.stats.heartbeatTimeouts, 0);
  assert.equal(client.online, 1);
  assert.ok(server.comet.channel("idle"));
});

Deno.test("a missed heartbeat reply makes the client reconnect", async () => {
  // Authenticates everyone and never answers a heartbeat.
  await using fake = new FakeServer(async (conn, _n, frame) => {
    if (frame.op === Op.Auth) await conn.write(encodeFrame(Op.AuthReply, frame.seq));
  });
  await using client = await connect(fake.url, {
    mid: 1,
    heartbeat: 100,
    reconnect: { initialDelay: 10, maxDelay: 50 },
  });
  const changes: StateChange[] = [];
  client.onState((change) => changes.push(change));
  assert.ok(await until(() => client.stats.reconnects >= 1, 3_000), "client reconnected");
  assert.ok(client.stats.missedHeartbeats >= 1);
  assert.ok(fake.conns.length >= 2);
  const lost = changes.find((c) => c.state === "reconnecting");
  assert.ok(lost?.reason instanceof ConnectionClosedError);
  assert.match(lost.reason.message, /Heartbeat reply missed: none within 100 ms/);
});

Deno.test("a reconnect refused by the server closes the client, a shutdown mid-handshake does not", async () => {
  const disconnect = (reason: string) => encodeFrame(Op.DisconnectReply, 0, utf8.encode(reason));
  for (
    const [second, expectOpen] of [["server shutting down", true], [
      "auth failed: expired",
      false,
    ]] as const
  ) {
    // Connection 1 is accepted and dropped; 2 gets op 6 instead of op 8; 3 is accepted.
    await using fake = new FakeServer(async (conn, n, frame) => {
      if (frame.op !== Op.Auth) return;
      if (n === 2) {
        await conn.write(disconnect(second));
        conn.close();
        return;
      }
      await conn.write(encodeFrame(Op.AuthReply, frame.seq));
      if (n === 1) {
        await delay(20);
        conn.close();
      }
    });
    const errors: Error[] = [];
    const changes: StateChange[] = [];
    await using client = await connect(fake.url, {
      mid: 1,
      reconnect: { initialDelay: 5, maxDelay: 20 },
    });
    client.onError((err) => errors.push(err));
    client.onState((change) => changes.push(change));
    if (expectOpen) {
      assert.ok(await until(() => client.stats.reconnects === 1), second);
      assert.equal(client.state, "open");
      assert.equal(fake.conns.length, 3);
      assert.ok(errors.some((e) => /Server disconnected: server shutting down/.test(e.message)));
    } else {
      assert.ok(await until(() => client.state === "closed"), second);
      const closed = changes.at(-1)!;
      assert.ok(closed.reason instanceof AuthError);
      assert.equal(closed.reason.reason, "auth failed: expired");
      await delay(50);
      assert.equal(fake.conns.length, 2, "a refusal is not retried");
    }
  }
});

Deno.test("connecting to a server that never answers times out, or stops on abort", async () => {
  await using fake = new FakeServer(() => {});
  const started = performance.now();
  await assert.rejects(connect(fake.url, { connectTimeout: 100 }), (err: Error) => {
    assert.ok(err instanceof RequestTimeoutError);
    assert.match(
      err.message,
      /^Connecting timed out: tcp:\/\/127\.0\.0\.1:\d+ was not ready within 100 ms$/,
    );
    return true;
  });
  assert.ok(performance.now() - started >= 90);

  const controller = new AbortController();
  const connecting = connect(fake.url, { signal: controller.signal });
  await until(() => fake.conns.length === 2);
  controller.abort(new Error("Changed my mind"));
  await assert.rejects(connecting, /Changed my mind/);
});

Deno.test("a request without a reply rejects with RequestTimeoutError", async () => {
  const hold = holdingOperator();
  await using server = startServer({ operator: hold.operator });
  const client = await connect(wsUrl(server), { mid: 1, requestTimeout: 150 });
  try {
    const started = performance.now();
    await assert.rejects(client.request("never"), (err: Error) => {
      assert.ok(err instanceof RequestTimeoutError);
      assert.match(err.message, /^Request timed out: no reply to op 4 seq \d+ within 150 ms$/);
      return true;
    });
    assert.ok(performance.now() - started >= 140);
    await assert.rejects(client.request("short", { timeout: 30 }), /within 30 ms/);

    const controller = new AbortController();
    const aborted = client.request("aborted", { signal: controller.signal });
    controller.abort(new Error("Caller gave up"));
    await assert.rejects(aborted, /Caller gave up/);
    assert.equal(client.pending, 0);
    assert.equal(client.state, "open");
    await assert.rejects(client.request("x", { timeout: -1 }), RangeError);
  } finally {
    hold.release();
    await client.close();
  }
});

Deno.test("close() fails pending requests with ConnectionClosedError and is idempotent", async () => {
  const hold = holdingOperator();
  await using server = startServer({ operator: hold.operator });
  try {
    const client = await connect(tcpUrl(server), { mid: 1, key: "closing" });
    const states: string[] = [];
    client.onState((change) => states.push(change.state));
    const stream = client.messages();
    const request = client.request("pending");
    assert.ok(await until(() => hold.held() === 1), "server holds the request");
    const first = client.close();
    assert.equal(client.close(), first);
    await assert.rejects(request, (err: Error) => {
      assert.ok(err instanceof ConnectionClosedError);
      assert.equal(err.message, "Client closed");
      return true;
    });
    await first;
    assert.equal(client.state, "closed");
    assert.deepEqual(states, ["closed"]);
    assert.deepEqual(await stream.next(), { value: undefined, done: true });
    await assert.rejects(client.request("late"), /Client is closed/);
    assert.throws(() => client.send(1000, "late"), ConnectionClosedError);
    await assert.rejects(client.sub([1000]), ConnectionClosedError);

    let outer: Client | undefined;
    {
      await using scoped = await connect(wsUrl(server), { mid: 2 });
      outer = scoped;
      assert.equal(scoped.state, "open");
    }
    assert.equal(outer.state, "closed");

    // An aborted signal closes the client too.
    const controller = new AbortController();
    const signalled = await connect(tcpUrl(server), { mid: 3, signal: controller.signal });
    controller.abort();
    await signalled.close();
    assert.equal(signalled.state, "closed");
  } finally {
    hold.release();
  }
});

Deno.test("sub, unsub and changeRoom resolve on their replies and change what arrives", async () => {
  await using server = startServer();
  for (const [kind, url] of TRANSPORTS) {
    const key = `subs-${kind}`;
    await using client = await connect(url(server), { mid: 3, key });
    const stream = client.messages();
    const channel = server.comet.channel(key)!;
    assert.equal(server.comet.pushKeys([key], 1001, utf8.encode("unwatched")), 0);

    await client.sub([1001, 1002]);
    assert.deepEqual(channel.watched().sort(), [1001, 1002]);
    assert.equal(server.comet.pushKeys([key], 1001, utf8.encode("watched")), 1);
    assert.equal(text((await nextPush(stream)).body), "watched");

    await client.unsub([1001]);
    assert.equal(server.comet.pushKeys([key], 1001, utf8.encode("dropped")), 0);
    assert.equal(server.comet.pushKeys([key], 1002, utf8.encode("still")), 1);
    assert.equal(text((await nextPush(stream)).body), "still");

    await client.changeRoom("live://moved");
    assert.equal(channel.room, "live://moved");
    assert.equal(server.comet.pushRoom("live://moved", 1000, utf8.encode("in room")), 1);
    assert.equal(text((await nextPush(stream)).body), "in room");
    await client.changeRoom("");
    assert.equal(channel.room, "");
    assert.equal(server.comet.pushRoom("live://moved", 1000, utf8.encode("left")), 0);

    await assert.rejects(client.sub([1.5]), RangeError);
    await assert.rejects(client.unsub([2 ** 31]), RangeError);
  }
});

Deno.test("JSON layer round-trips requests and pushes and reports bodies that are not JSON", async () => {
  const upstream: unknown[] = [];
  await using server = startServer({
    operator: {
      connect: ({ body }) => parseGoimAuth(body),
      receive(_channel, frame) {
        const message = JSON.parse(text(frame.body));
        upstream.push(message);
        if (message.act === "plain") return "plain text";
        return JSON.stringify({ act: `${message.act}:ok`, data: message.data });
      },
    },
  });
  await using client = await connect(tcpUrl(server), { mid: 1, roomId: "live://json" });
  const errors: Error[] = [];
  client.onError((err) => errors.push(err));

  const reply = await client.requestJson<{ act: string; data: unknown }>({
    act: "echo",
    data: { n: 1, s: "ü" },
  });
  assert.deepEqual(reply, { act: "echo:ok", data: { n: 1, s: "ü" } });
  await assert.rejects(client.requestJson({ act: "plain" }), SyntaxError);

  client.sendJson(Op.SendMsg, { act: "fire", data: [1, 2] });
  assert.ok(await until(() => upstream.length === 3));
  assert.deepEqual(upstream[2], { act: "fire", data: [1, 2] });

  const viaHandler: unknown[] = [];
  client.onJson(1000, (value) => viaHandler.push(value));
  const messages = client.jsonMessages<{ act: string }>();
  const push = (value: string) => server.comet.pushRoom("live://json", 1000, utf8.encode(value));
  push(JSON.stringify({ act: "chat", data: "hi" }));
  push("{not json");
  push(JSON.stringify({ act: "bye" }));
  const first = await within(messages.next(), 3_000, "a JSON push");
  const second = await within(messages.next(), 3_000, "a JSON push");
  // The client opts in to streams by default: a room push carries its place in the room's stream.
  const epoch = first.value?.stream?.epoch;
  assert.deepEqual(first.value, {
    op: 1000,
    value: { act: "chat", data: "hi" },
    stream: { kind: "room", epoch, offset: 1 },
  });
  assert.deepEqual(second.value, {
    op: 1000,
    value: { act: "bye" },
    stream: { kind: "room", epoch, offset: 3 },
  });
  await messages.return();
  assert.deepEqual(viaHandler, [{ act: "chat", data: "hi" }, { act: "bye" }]);
  // Reported once by onJson and once by jsonMessages, and the receive loop went on.
  assert.equal(errors.length, 2);
  assert.ok(errors.every((e) => e instanceof SyntaxError && /op 1000 is not JSON/.test(e.message)));
  assert.equal(client.state, "open");
  assert.throws(() => client.sendJson(1000, undefined), TypeError);
});

Deno.test("a refused auth rejects connect with AuthError and is not retried", async () => {
  await using server = startServer({
    operator: {
      connect() {
        throw new Error("Bad token");
      },
    },
  });
  for (const [, url] of TRANSPORTS) {
    await assert.rejects(
      connect(url(server), { auth: { token: "wrong" }, reconnect: { initialDelay: 1 } }),
      (err: Error) => {
        assert.ok(err instanceof AuthError);
        assert.equal(err.reason, "auth failed: Bad token");
        assert.equal(err.message, "Authentication refused: auth failed: Bad token");
        return true;
      },
    );
  }
  await delay(50);
  assert.equal(server.comet.stats.authFailed, 2);
  assert.equal(server.comet.stats.accepted, 2);
});

Deno.test("a first connection that cannot be made rejects connect", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await assert.rejects(connect(`tcp://127.0.0.1:${port}`), (err: Error) => {
    assert.ok(err instanceof ConnectionClosedError);
    assert.match(err.message, /^Connecting to tcp:\/\/127\.0\.0\.1:\d+ failed: /);
    return true;
  });
  await assert.rejects(connect(`ws://127.0.0.1:${port}/sub`), ConnectionClosedError);
  await assert.rejects(connect("http://127.0.0.1:1/"), TypeError);
  await assert.rejects(connect("tcp://127.0.0.1"), /URL has no port/);
  await assert.rejects(connect("ws://127.0.0.1:1/sub", { auth: "x", mid: 1 }), TypeError);
  await assert.rejects(connect("ws://127.0.0.1:1/sub", { heartbeat: 0 }), RangeError);
});

Deno.test("backoff grows, caps and jitters; message streams drop the oldest when full", async () => {
  const policy = reconnectPolicy({ initialDelay: 100, maxDelay: 1_000, jitter: 0 });
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => reconnectDelay(n, policy)), [
    100,
    200,
    400,
    800,
    1_000,
    1_000,
  ]);
  const jittery = reconnectPolicy({ initialDelay: 100, jitter: 0.5 });
  assert.equal(reconnectDelay(0, jittery, 0), 100);
  assert.equal(reconnectDelay(0, jittery, 0.999999), 50.0000500000000);
  assert.throws(() => reconnectPolicy({ jitter: 2 }), RangeError);
  assert.throws(() => reconnectPolicy({ factor: 0.5 }), RangeError);
  assert.throws(() => reconnectPolicy({ maxAttempts: 0 }), RangeError);

  const stream = new MessageStream<number>(3);
  for (let i = 0; i < 10; i++) stream.push(i);
  assert.equal(stream.dropped, 7);
  assert.deepEqual((await stream.next()).value, 7);
  stream.push(10);
  stream.end();
  const rest: number[] = [];
  for await (const n of stream) rest.push(n);
  assert.deepEqual(rest, [8, 9, 10]);
});

Deno.test({
  name: "tls:// and wss:// connect with caCerts",
  ignore: !(await opensslAvailable()),
  async fn(t) {
    const { cert, key } = await makeCertificate();
    await using server = startServer({
      tcp: false,
      ws: false,
      tls: { cert, key },
      tcpTls: { hostname: "127.0.0.1", port: 0 },
      wss: { hostname: "127.0.0.1", port: 0 },
    });
    const urls = [
      `tls://localhost:${server.addrs.tcpTls!.port}`,
      `wss://localhost:${server.addrs.wss!.port}/sub`,
    ];
    for (const url of urls) {
      await t.step(url.slice(0, 3), async () => {
        await using client = await connect(url, {
          mid: 1,
          roomId: "live://tls",
          caCerts: [cert],
        });
        const stream = client.messages();
        assert.equal(server.comet.pushRoom("live://tls", 1000, utf8.encode("secure")), 1);
        assert.equal(text((await nextPush(stream)).body), "secure");
        assert.equal(text(await client.request("over tls")), "over tls");
      });
    }
    // Without the certificate the handshake fails and connect says so.
    await assert.rejects(connect(urls[0]!, { mid: 1 }), /TLS handshake with tls:\/\/localhost/);
  },
});

const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>comet client</title></head>
<body>
<script type="module">
  import { Client } from "./client.js";
  window.pushes = [];
  window.states = [];
  try {
    const params = new URLSearchParams(location.search);
    const client = new Client(params.get("ws"), { mid: 9, key: "browser", roomId: "live://browser" });
    client.onState((change) => window.states.push(change.state));
    await client.opened;
    window.client = client;
    window.ready = true;
    for await (const push of client.messages()) {
      window.pushes.push({ op: push.op, body: new TextDecoder().decode(push.body) });
      window.batches = client.stats.batches;
    }
  } catch (err) {
    window.failure = String(err);
  }
</script>
</body>
</html>
`;

Deno.test({
  name: "a browser page loads the bundled client and receives room pushes, batches included",
  ignore: findChromium() === undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "comet_client_browser_" });
    try {
      const entry = new URL("src/client/mod_browser.ts", ROOT);
      const bundled = await new Deno.Command(Deno.execPath(), {
        args: [
          "bundle",
          "--quiet",
          "--platform",
          "browser",
          entry.pathname,
          "-o",
          `${dir}/client.js`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!bundled.success) {
        console.warn(
          `Bundling the client failed (no network for esbuild?); skipping: ${
            new TextDecoder().decode(bundled.stderr).trim()
          }`,
        );
        return;
      }
      const script = await Deno.readTextFile(`${dir}/client.js`);
      assert.ok(!/\bDeno\b/.test(script), "the browser bundle uses no Deno API");

      await using server = startServer();
      await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
        const path = new URL(req.url).pathname;
        if (path === "/") {
          return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
        }
        if (path === "/client.js") {
          return new Response(script, { headers: { "content-type": "text/javascript" } });
        }
        return new Response("Not found", { status: 404 });
      });
      await using browser = await Chromium.launch();
      const ws = encodeURIComponent(wsUrl(server));
      const page = await browser.newPage(`http://127.0.0.1:${http.addr.port}/?ws=${ws}`);
      await page.waitFor(`window.ready === true || window.failure !== undefined`, 10_000);
      assert.equal(await page.evaluate("window.failure"), undefined);
      assert.ok(server.comet.channel("browser"));

      const res = await api(server, "/goim/push/room?operation=1000&type=live&room=browser", {
        method: "POST",
        body: "from the api",
      });
      assert.equal(res.body.code, 0);
      await page.waitFor(`window.pushes.length === 1`);
      // Three pushes in one turn leave as one op-9 batch, which the page unpacks.
      for (const n of [1, 2, 3]) {
        server.comet.pushRoom("live://browser", 1001, utf8.encode(`b${n}`));
      }
      await page.waitFor(`window.pushes.length === 4`);
      assert.deepEqual(await page.evaluate("window.pushes"), [
        { op: 1000, body: "from the api" },
        { op: 1001, body: "b1" },
        { op: 1001, body: "b2" },
        { op: 1001, body: "b3" },
      ]);
      assert.equal(await page.evaluate("window.batches"), 1);
      assert.equal(await page.evaluate("window.client.state"), "open");
      await page.evaluate("window.client.close()");
      assert.equal(await page.evaluate("window.client.state"), "closed");
      assert.deepEqual(page.errors, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
