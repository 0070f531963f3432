// The webhook operator against a fake application on loopback: accept, refuse,
// failures, timeout, bounded concurrency and queue, response cap, signing.
import assert from "node:assert/strict";
import {
  WebhookError,
  WebhookOperator,
  WebhookUnavailableError,
} from "../src/auth/webhook_operator.ts";
import { Op } from "../src/protocol/op.ts";
import type { Channel } from "../src/server/channel.ts";
import type { ConnectRequest } from "../src/server/operator.ts";
import { OperatorUnavailableError } from "../src/server/operator_unavailable_error.ts";
import { startServer, TestClient, text, utf8 } from "./_helpers.ts";

/** Resolves after `ms`, or early when `signal` aborts (a client that gave up). */
function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

interface Seen {
  headers: Headers;
  raw: string;
  json: Record<string, unknown>;
}

type Handler = (req: Request, seen: Seen) => Response | Promise<Response>;

/** The application's auth endpoint, faked: records calls and counts those in flight. */
class FakeApp implements AsyncDisposable {
  readonly seen: Seen[] = [];
  inflight = 0;
  maxInflight = 0;
  handler: Handler;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #stop = new AbortController();

  constructor(handler: Handler) {
    this.handler = handler;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (req) => {
        this.inflight++;
        this.maxInflight = Math.max(this.maxInflight, this.inflight);
        try {
          const raw = await req.text();
          const seen = { headers: req.headers, raw, json: JSON.parse(raw) };
          this.seen.push(seen);
          return await this.handler(req, seen);
        } finally {
          this.inflight--;
        }
      },
    );
  }

  /** Aborted when the app is shut down, to end handlers that are still waiting. */
  get stopping(): AbortSignal {
    return this.#stop.signal;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.addr.port}/auth`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#stop.abort();
    await this.#server.shutdown();
  }
}

function request(body: string | Uint8Array, headers?: Headers): ConnectRequest {
  return {
    body: typeof body === "string" ? utf8.encode(body) : body,
    info: {
      transport: "ws",
      remoteAddr: { hostname: "203.0.113.7", port: 51234 },
      ...(headers && { headers }),
    },
  };
}

/**
 * Expects the operator's failure with `reason` and `message`: a refusal is a
 * WebhookError, which the hub counts against the client's IP; any other
 * reason is a WebhookUnavailableError, an OperatorUnavailableError, which it
 * does not.
 */
async function refusedWith(promise: Promise<unknown>, reason: string, message: string | RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    if (reason === "refused") {
      assert.ok(err instanceof WebhookError, `expected WebhookError, got ${err}`);
      assert.ok(!(err instanceof OperatorUnavailableError), "a refusal is not unavailability");
    } else {
      assert.ok(
        err instanceof WebhookUnavailableError,
        `expected WebhookUnavailableError, got ${err}`,
      );
      assert.ok(err instanceof OperatorUnavailableError, "unavailability is not a refusal");
      assert.ok(!(err instanceof WebhookError), "unavailability is not a WebhookError");
    }
    assert.equal(err.reason, reason);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

/** Sends an auth frame and expects op 6 with `reason`, then the server's close. */
async function expectRefused(port: number, body: string, reason: string): Promise<void> {
  await using c = await TestClient.connect(port);
  c.sendFrame(Op.Auth, body);
  const f = await c.next();
  assert.equal(f.op, Op.DisconnectReply, `expected op 6, got op ${f.op}`);
  assert.equal(text(f.body), reason);
  assert.ok(await c.closedByServer(), "the server closes a refused connection");
}

Deno.test("webhook: an accepting answer becomes the session", async () => {
  await using app = new FakeApp(() =>
    Response.json({
      mid: 1001,
      key: "k-1",
      room: "live://3",
      rooms: ["live://3", "live://4"],
      accepts: [1000],
      platform: "web",
      heartbeat: 30,
    })
  );
  const operator = new WebhookOperator({ url: app.url, secret: "s3cret" });
  await using server = startServer({ operator });
  await using c = await TestClient.auth(server.addrs.tcp!.port, { token: "abc", mid: 9 });
  const ch = server.comet.channel("k-1") as Channel | undefined;
  assert.ok(ch);
  assert.equal(ch.mid, 1001);
  assert.equal(ch.room, "live://3");
  assert.equal(ch.platform, "web");
  assert.deepEqual(ch.watched(), [1000]);
  assert.deepEqual(ch._rooms, ["live://3", "live://4"]);
  assert.equal(ch._heartbeat, 30_000);
  assert.equal(server.comet.pushMids([1001], 1000, utf8.encode("hi")), 1);
  assert.equal((await c.next()).op, 1000);

  const [seen] = app.seen;
  assert.equal(seen!.headers.get("authorization"), "Bearer s3cret");
  assert.equal(seen!.headers.get("content-type"), "application/json");
  const port = (c.conn.localAddr as Deno.NetAddr).port;
  assert.deepEqual(seen!.json, {
    body: JSON.stringify({ token: "abc", mid: 9 }),
    body_encoding: "utf8",
    transport: "tcp",
    remote_addr: "127.0.0.1",
    remote_port: port,
    headers: {},
  });
});

Deno.test("webhook: selected upgrade headers are forwarded; binary bodies go as base64", async () => {
  await using app = new FakeApp(() => Response.json({ mid: 0 }));
  const operator = new WebhookOperator({ url: app.url });
  const headers = new Headers({
    cookie: "sid=1",
    origin: "https://app.example",
    "user-agent": "test",
    "sec-websocket-key": "not forwarded",
    authorization: "Bearer not forwarded either",
  });
  assert.deepEqual(await operator.connect(request(new Uint8Array([0, 0xff, 0x80]), headers)), {
    mid: 0,
  });
  const { json, headers: sent } = app.seen[0]!;
  assert.equal(json.body, "AP+A");
  assert.equal(json.body_encoding, "base64");
  assert.equal(json.transport, "ws");
  assert.equal(json.remote_addr, "203.0.113.7");
  assert.deepEqual(json.headers, {
    cookie: "sid=1",
    origin: "https://app.example",
    "user-agent": "test",
  });
  assert.equal(sent.get("authorization"), null, "no secret, no authorization header");
});

Deno.test("webhook: the hmac scheme signs timestamp and body", async () => {
  await using app = new FakeApp(() => Response.json({ mid: 5 }));
  const secret = "shared with the app";
  const operator = new WebhookOperator({ url: app.url, secret, authScheme: "hmac" });
  await operator.connect(request("tok"));
  const { headers, raw } = app.seen[0]!;
  assert.equal(headers.get("authorization"), null, "the secret never travels");
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(headers.get("x-comet-signature") ?? "");
  assert.ok(m, `signature header: ${headers.get("x-comet-signature")}`);
  assert.ok(Math.abs(Number(m[1]) - Date.now() / 1000) < 5);
  const key = await crypto.subtle.importKey(
    "raw",
    utf8.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const mac = Uint8Array.from(m[2]!.match(/../g)!, (h) => parseInt(h, 16));
  assert.ok(await crypto.subtle.verify("HMAC", key, mac, utf8.encode(`${m[1]}.${raw}`)));
});

Deno.test("webhook: an error answer refuses with its reason", async () => {
  await using app = new FakeApp((req) => {
    const url = new URL(req.url);
    if (url.searchParams.has("403")) {
      return Response.json({ error: "session\r\nexpired" }, { status: 403 });
    }
    return Response.json({ error: "banned user" });
  });
  await using server = startServer({ operator: new WebhookOperator({ url: app.url }) });
  await expectRefused(server.addrs.tcp!.port, "{}", "auth failed: banned user");
  const op403 = new WebhookOperator({ url: `${app.url}?403` });
  // Control characters from the application do not reach the client.
  await refusedWith(op403.connect(request("x")), "refused", "session expired");
  assert.equal(server.comet.connections, 0);
});

Deno.test("webhook: non-2xx answers refuse without showing their body", async () => {
  await using app = new FakeApp((req) => {
    const status = Number(new URL(req.url).searchParams.get("status"));
    if (status === 302) {
      return new Response(null, { status, headers: { location: "http://example.com/" } });
    }
    return new Response(`internal detail ${status}`, { status });
  });
  const at = (status: number) => new WebhookOperator({ url: `${app.url}?status=${status}` });
  await refusedWith(at(500).connect(request("x")), "unavailable", "auth service failed: 500");
  await refusedWith(at(503).connect(request("x")), "unavailable", "auth service failed: 503");
  await refusedWith(at(401).connect(request("x")), "refused", "auth service refused: 401");
  await refusedWith(at(302).connect(request("x")), "unavailable", "auth service failed: 302");
  assert.equal(app.seen.length, 4, "the redirect was not followed");
  await using server = startServer({ operator: at(500) });
  await expectRefused(server.addrs.tcp!.port, "{}", "auth failed: auth service failed: 500");
});

Deno.test("webhook: a slow application times out and the connection is closed", async () => {
  await using app = new FakeApp(async () => {
    await delay(2_000, app.stopping);
    return Response.json({ mid: 1 });
  });
  await using server = startServer({
    operator: new WebhookOperator({ url: app.url, timeout: 200 }),
  });
  const started = Date.now();
  await expectRefused(server.addrs.tcp!.port, "{}", "auth failed: auth service timed out");
  assert.ok(Date.now() - started < 1_500, "refused at the timeout, not when the app answered");
  assert.equal(server.comet.connections, 0);
});

Deno.test("webhook: at most `concurrency` calls are in flight", async () => {
  await using app = new FakeApp(async (_req, seen) => {
    await delay(30, app.stopping);
    return Response.json({ mid: Number(seen.json.body) });
  });
  const operator = new WebhookOperator({ url: app.url, concurrency: 3 });
  const sessions = await Promise.all(
    Array.from({ length: 12 }, (_, i) => operator.connect(request(String(i)))),
  );
  assert.deepEqual(sessions.map((s) => s.mid), Array.from({ length: 12 }, (_, i) => i));
  assert.equal(app.seen.length, 12);
  assert.equal(app.maxInflight, 3);
  assert.equal(operator.inflight, 0);
  assert.equal(operator.waiting, 0);
});

Deno.test("webhook: clients authenticating at once share the bounded slots", async () => {
  await using app = new FakeApp(async (_req, seen) => {
    await delay(30, app.stopping);
    return Response.json({ mid: 1, key: seen.json.body });
  });
  await using server = startServer({
    operator: new WebhookOperator({ url: app.url, concurrency: 2 }),
  });
  const port = server.addrs.tcp!.port;
  const clients = await Promise.all(
    Array.from({ length: 8 }, (_, i) => TestClient.auth(port, { n: i })),
  );
  try {
    assert.equal(server.comet.connections, 8);
    assert.equal(app.maxInflight, 2);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

Deno.test("webhook: past the queue limit attempts are refused as busy", async () => {
  const release = Promise.withResolvers<void>();
  await using app = new FakeApp(async () => {
    await Promise.race([release.promise, delay(5_000, app.stopping)]);
    return Response.json({ mid: 1 });
  });
  const operator = new WebhookOperator({ url: app.url, concurrency: 1, queue: 2 });
  const attempts = Array.from({ length: 5 }, () => operator.connect(request("x")));
  // Two beyond the one in flight and the two waiting are refused at once.
  await Promise.all([
    refusedWith(attempts[3]!, "busy", "auth service busy"),
    refusedWith(attempts[4]!, "busy", "auth service busy"),
  ]);
  assert.equal(operator.inflight, 1);
  assert.equal(operator.waiting, 2);
  release.resolve();
  for (const a of attempts.slice(0, 3)) assert.equal((await a).mid, 1);
  assert.equal(app.maxInflight, 1);
});

Deno.test("webhook: waiting for a slot counts against the timeout", async () => {
  await using app = new FakeApp(async () => {
    await delay(400, app.stopping);
    return Response.json({ mid: 1 });
  });
  const operator = new WebhookOperator({ url: app.url, concurrency: 1, timeout: 150 });
  const first = operator.connect(request("a"));
  const second = operator.connect(request("b"));
  await Promise.all([
    refusedWith(first, "timeout", "auth service timed out"),
    refusedWith(second, "busy", "auth service busy"),
  ]);
  assert.equal(app.seen.length, 1, "the waiting attempt never reached the app");
  assert.equal(operator.inflight, 0);
});

Deno.test("webhook: an oversized answer is refused", async () => {
  const big = JSON.stringify({ mid: 1, pad: "x".repeat(100_000) });
  await using app = new FakeApp((req) => {
    if (new URL(req.url).searchParams.has("stream")) {
      // No content-length: the cap must hold while streaming.
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 10; i++) controller.enqueue(utf8.encode(" ".repeat(1024)));
          controller.enqueue(utf8.encode(big));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "application/json" } });
    }
    return new Response(big, { headers: { "content-type": "application/json" } });
  });
  const small = (url: string) => new WebhookOperator({ url, maxResponseBytes: 4096 });
  await refusedWith(
    small(app.url).connect(request("x")),
    "bad_answer",
    "auth service answer too large",
  );
  await refusedWith(
    small(`${app.url}?stream`).connect(request("x")),
    "bad_answer",
    "auth service answer too large",
  );
  // The same answer under a larger cap is fine.
  const roomy = new WebhookOperator({ url: app.url, maxResponseBytes: 200_000 });
  assert.equal((await roomy.connect(request("x"))).mid, 1);
});

Deno.test("webhook: invalid answers are refused, never read as a welcome", async () => {
  await using app = new FakeApp((req) => {
    const kind = new URL(req.url).searchParams.get("kind");
    switch (kind) {
      case "empty":
        return Response.json({});
      case "text":
        return new Response("ok");
      case "array":
        return Response.json([{ mid: 1 }]);
      case "mid":
        return Response.json({ mid: "alice" });
      case "accepts":
        return Response.json({ mid: 1, accepts: ["1000"] });
      case "heartbeat":
        return Response.json({ mid: 1, heartbeat: -5 });
      case "error":
        return Response.json({ mid: 1, error: 42 });
      default:
        return Response.json({ mid: "18", expires_at: 2_000_000_000 });
    }
  });
  const at = (kind: string) => new WebhookOperator({ url: `${app.url}?kind=${kind}` });
  const bad = /^auth service answer is invalid: /;
  await refusedWith(at("empty").connect(request("x")), "bad_answer", /mid/);
  await refusedWith(at("text").connect(request("x")), "bad_answer", bad);
  await refusedWith(at("array").connect(request("x")), "bad_answer", bad);
  await refusedWith(at("mid").connect(request("x")), "bad_answer", /mid/);
  await refusedWith(at("accepts").connect(request("x")), "bad_answer", /accepts/);
  await refusedWith(at("heartbeat").connect(request("x")), "bad_answer", /heartbeat/);
  await refusedWith(at("error").connect(request("x")), "bad_answer", /error/);
  assert.deepEqual(await at("ok").connect(request("x")), {
    mid: 18,
    expiresAt: 2_000_000_000_000,
  });
});

Deno.test("webhook: an unreachable application refuses as unavailable", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const operator = new WebhookOperator({ url: `http://127.0.0.1:${port}/auth` });
  await refusedWith(operator.connect(request("x")), "unavailable", "auth service unavailable");
});

Deno.test("webhook: aborting the signal cancels calls in flight and refuses new ones", async () => {
  await using app = new FakeApp(async () => {
    await delay(5_000, app.stopping);
    return Response.json({ mid: 1 });
  });
  const stop = new AbortController();
  const operator = new WebhookOperator({ url: app.url, signal: stop.signal, concurrency: 1 });
  const inFlight = operator.connect(request("a"));
  const waiting = operator.connect(request("b"));
  await delay(50);
  stop.abort();
  await Promise.all([
    refusedWith(inFlight, "closed", "auth service unavailable"),
    refusedWith(waiting, "closed", "auth service unavailable"),
  ]);
  await refusedWith(operator.connect(request("c")), "closed", "auth service unavailable");
});

Deno.test("webhook: a connection that goes away stops waiting (when the hub says so)", async () => {
  const release = Promise.withResolvers<void>();
  await using app = new FakeApp(async () => {
    await Promise.race([release.promise, delay(5_000, app.stopping)]);
    return Response.json({ mid: 1 });
  });
  const operator = new WebhookOperator({ url: app.url, concurrency: 1 });
  const gone = new AbortController();
  const first = operator.connect(request("a"));
  // A ConnectRequest with a signal: what a hub that reports closed connections would pass.
  const second = operator.connect({ ...request("b"), signal: gone.signal } as ConnectRequest);
  await delay(20);
  assert.equal(operator.waiting, 1);
  gone.abort();
  await refusedWith(second, "closed", "connection closed");
  assert.equal(operator.waiting, 0);
  release.resolve();
  assert.equal((await first).mid, 1);
  assert.equal(app.seen.length, 1);
});

Deno.test("webhook: bad options are refused", () => {
  const url = "http://127.0.0.1:1/auth";
  assert.throws(() => new WebhookOperator({ url: "not a url" }), TypeError);
  assert.throws(() => new WebhookOperator({ url: "ftp://example.com/" }), TypeError);
  assert.throws(() => new WebhookOperator({ url: "http://u:p@example.com/" }), TypeError);
  assert.throws(() => new WebhookOperator({ url, timeout: 0 }), RangeError);
  assert.throws(() => new WebhookOperator({ url, concurrency: 0 }), RangeError);
  assert.throws(() => new WebhookOperator({ url, queue: -1 }), RangeError);
  assert.throws(() => new WebhookOperator({ url, maxResponseBytes: 1.5 }), RangeError);
  assert.throws(() => new WebhookOperator({ url, secret: "" }), TypeError);
  assert.throws(() => new WebhookOperator({ url, secret: "a\nb" }), TypeError);
  assert.throws(
    () => new WebhookOperator({ url, authScheme: "basic" as "bearer", secret: "x" }),
    TypeError,
  );
  assert.throws(() => new WebhookOperator({ url, authScheme: "hmac" }), TypeError);
});
