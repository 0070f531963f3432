// The push API's own HTTP/1.1 server: framing, deadlines, the connection cap and shutdown,
// over raw loopback sockets.
import assert from "node:assert/strict";
import { type HttpHandler, HttpServer, type HttpServerOptions } from "../src/api/http_server.ts";
import { silentLogger } from "../src/log.ts";
import { startServer, text, utf8 } from "./_helpers.ts";
import { spawnCliUnderUlimit, stopChild, terminate } from "./_process.ts";

/** Echoes the request: method, path, and the body it read, as JSON. */
const echo: HttpHandler = async (request) => {
  const body = request.body ? await request.text() : null;
  const url = new URL(request.url);
  return Response.json({
    method: request.method,
    path: url.pathname + url.search,
    host: url.host,
    body,
  });
};

function start(options: HttpServerOptions = {}, handler: HttpHandler = echo): HttpServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return new HttpServer(listener, handler, { logger: silentLogger, ...options });
}

interface Reply {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** A raw client: writes bytes, reads whole responses. */
class RawConn implements AsyncDisposable {
  readonly conn: Deno.TcpConn;
  #rest = "";

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async open(server: HttpServer): Promise<RawConn> {
    return new RawConn(await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
  }

  async send(data: string): Promise<void> {
    await this.conn.write(utf8.encode(data));
  }

  /** Reads more; false once the server has closed (or reset) the connection. */
  async #more(): Promise<boolean> {
    const buf = new Uint8Array(65536);
    const n = await this.conn.read(buf).catch(() => null);
    if (n === null) return false;
    this.#rest += text(buf.subarray(0, n));
    return true;
  }

  /** The next whole response; a HEAD's has no body whatever its Content-Length says. */
  async reply(head = false): Promise<Reply> {
    let end: number;
    while ((end = this.#rest.indexOf("\r\n\r\n")) < 0) {
      if (!await this.#more()) throw new Error(`Closed before a response: ${this.#rest}`);
    }
    const [status, ...lines] = this.#rest.slice(0, end).split("\r\n");
    const headers = new Map(lines.map((l) => {
      const at = l.indexOf(":");
      return [l.slice(0, at).toLowerCase(), l.slice(at + 1).trim()] as [string, string];
    }));
    const length = head ? 0 : Number(headers.get("content-length") ?? 0);
    while (this.#rest.length < end + 4 + length) {
      if (!await this.#more()) throw new Error(`Closed within a body: ${this.#rest}`);
    }
    const body = this.#rest.slice(end + 4, end + 4 + length);
    this.#rest = this.#rest.slice(end + 4 + length);
    return { status: Number(status!.split(" ")[1]), headers, body };
  }

  /** Resolves with true once the server closes the connection, false if it has not within `ms`. */
  async closed(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
    const drained = (async () => {
      while (await this.#more()) { /* discard */ }
      return true as const;
    })();
    const result = await Promise.race([drained, late]);
    clearTimeout(timer);
    if (!result) {
      this.conn.close();
      await drained;
    }
    return result;
  }

  [Symbol.asyncDispose](): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Closed already.
    }
    return Promise.resolve();
  }
}

const GET = "GET /x?a=1 HTTP/1.1\r\nHost: example.test\r\n\r\n";

Deno.test("requests on one kept-alive connection are answered in turn, pipelined too", async () => {
  await using server = start();
  await using raw = await RawConn.open(server);
  await raw.send(GET);
  const first = await raw.reply();
  assert.equal(first.status, 200);
  assert.deepEqual(JSON.parse(first.body), {
    method: "GET",
    path: "/x?a=1",
    host: "example.test",
    body: null,
  });
  assert.equal(first.headers.get("content-type"), "application/json");
  assert.ok(first.headers.has("date"));
  assert.equal(first.headers.get("connection"), undefined);
  await raw.send(
    "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
      "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
  );
  assert.equal(JSON.parse((await raw.reply()).body).body, "hello");
  assert.deepEqual(JSON.parse((await raw.reply()).body), {
    method: "POST",
    path: "/b",
    host: "h",
    body: "abcde",
  });
  assert.equal(server.stats.accepted, 1);
});

Deno.test("a body that arrives in pieces streams to the handler", async () => {
  await using server = start();
  await using raw = await RawConn.open(server);
  await raw.send("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
  await new Promise((r) => setTimeout(r, 30));
  await raw.send("defghij");
  assert.equal(JSON.parse((await raw.reply()).body).body, "abcdefghij");
});

Deno.test("Connection: close and HTTP/1.0 get their answer, then the connection closes", async () => {
  await using server = start();
  for (
    const request of [
      GET.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"),
      "GET / HTTP/1.0\r\n\r\n",
    ]
  ) {
    await using raw = await RawConn.open(server);
    await raw.send(request);
    const reply = await raw.reply();
    assert.equal(reply.status, 200);
    assert.equal(reply.headers.get("connection"), "close");
    assert.ok(await raw.closed(1000));
  }
});

Deno.test("HEAD is answered with the length of the body it does not get", async () => {
  await using server = start();
  await using raw = await RawConn.open(server);
  await raw.send("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n" + GET);
  const head = await raw.reply(true);
  assert.equal(head.status, 200);
  assert.ok(Number(head.headers.get("content-length")) > 0);
  assert.equal(head.body, "");
  // The next answer starts right after the head: no body bytes came in between.
  assert.equal((await raw.reply()).status, 200);
});

Deno.test("Expect: 100-continue is told to go on when the handler reads the body", async () => {
  await using server = start();
  await using raw = await RawConn.open(server);
  await raw.send(
    "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
  );
  assert.equal((await raw.reply()).status, 100);
  await raw.send("ok");
  const reply = await raw.reply();
  assert.equal(reply.status, 200);
  assert.equal(JSON.parse(reply.body).body, "ok");
});

Deno.test("a small body the handler leaves unread is read past, and the connection kept", async () => {
  await using server = start({}, () => Promise.resolve(new Response("no", { status: 401 })));
  await using raw = await RawConn.open(server);
  await raw.send("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" + GET);
  const refused = await raw.reply();
  assert.equal(refused.status, 401);
  assert.equal(refused.headers.get("connection"), undefined);
  assert.equal((await raw.reply()).status, 401);
});

Deno.test("malformed requests are answered 400, 417, 431, 501 or 505 and closed", async () => {
  await using server = start({ maxHeaderBytes: 1024 });
  const cases: [string, number][] = [
    ["NOT HTTP AT ALL\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\n\r\n", 400], // no Host
    ["GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
    ["GET / HTTP/1.1\nHost: a\n\n", 400], // bare LF
    ["GET / HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: banana\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
    ["POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501],
    ["GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417],
    ["GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400],
    [`GET /${"a".repeat(2000)} HTTP/1.1\r\nHost: a\r\n\r\n`, 431],
    ["GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505],
  ];
  for (const [request, status] of cases) {
    await using raw = await RawConn.open(server);
    await raw.send(request);
    const reply = await raw.reply();
    assert.equal(reply.status, status, JSON.stringify(request.slice(0, 60)));
    assert.equal(JSON.parse(reply.body).code, -status);
    assert.equal(reply.headers.get("connection"), "close");
    assert.ok(await raw.closed(2000), "still open after a refusal");
  }
  assert.equal(server.stats.badRequests, cases.length);
});

Deno.test("a malformed chunked body fails the handler's read, and the connection closes", async () => {
  await using server = start();
  await using raw = await RawConn.open(server);
  await raw.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
  // The echo handler throws on the failed read: the default answer is a bare 500.
  assert.equal((await raw.reply()).status, 500);
  assert.ok(await raw.closed(2000));
});

Deno.test("a socket that sends nothing, or half its headers, is answered 408 after the header timeout", async () => {
  await using server = start({ headerTimeout: 150 });
  await using silent = await RawConn.open(server);
  await using partial = await RawConn.open(server);
  await partial.send("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ");
  const started = performance.now();
  for (const raw of [silent, partial]) {
    const reply = await raw.reply();
    assert.equal(reply.status, 408);
    assert.ok(await raw.closed(1000));
  }
  const took = performance.now() - started;
  assert.ok(took >= 100 && took < 1500, `closed after ${took} ms`);
  assert.equal(server.stats.headerTimeouts, 2);
  assert.equal(server.connections, 0);
});

Deno.test("a request whose body stalls is answered 408 after the body timeout", async () => {
  let failed = false;
  const reader: HttpHandler = async (request) => {
    try {
      await request.arrayBuffer();
    } catch {
      failed = true;
    }
    return new Response("late");
  };
  await using server = start({ bodyTimeout: 150 }, reader);
  await using raw = await RawConn.open(server);
  await raw.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
  const reply = await raw.reply();
  assert.equal(reply.status, 408);
  assert.match(reply.body, /body/);
  assert.ok(await raw.closed(1000));
  assert.equal(server.stats.bodyTimeouts, 1);
  assert.ok(failed, "the handler's read did not fail");
});

Deno.test("an idle API socket is closed after the idle timeout", async () => {
  await using server = start({ idleTimeout: 150, headerTimeout: 5_000 });
  await using raw = await RawConn.open(server);
  await raw.send(GET);
  assert.equal((await raw.reply()).status, 200);
  const started = performance.now();
  assert.ok(await raw.closed(2000), "the idle connection stayed open");
  const took = performance.now() - started;
  assert.ok(took >= 100, `closed after ${took} ms`);
  assert.equal(server.stats.idleTimeouts, 1);
});

Deno.test("connections beyond maxConnections are answered 503 and closed; a freed place is reused", async () => {
  await using server = start({ maxConnections: 2 });
  const held = [await RawConn.open(server), await RawConn.open(server)];
  for (const raw of held) {
    await raw.send(GET);
    assert.equal((await raw.reply()).status, 200);
  }
  {
    await using extra = await RawConn.open(server);
    await extra.send(GET);
    const reply = await extra.reply();
    assert.equal(reply.status, 503);
    assert.equal(reply.headers.get("retry-after"), "1");
    assert.ok(await extra.closed(1000));
  }
  assert.equal(server.stats.refused, 1);
  await held[0]![Symbol.asyncDispose]();
  let status = 503;
  for (let i = 0; i < 50 && status === 503; i++) {
    await using next = await RawConn.open(server);
    await next.send(GET);
    status = (await next.reply()).status;
    if (status === 503) await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(status, 200);
  await held[1]![Symbol.asyncDispose]();
});

Deno.test("shutdown closes idle connections, answers the request in flight and then stops", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow: HttpHandler = async () => {
    await gate;
    return new Response("done");
  };
  const server = start({}, slow);
  await using idle = await RawConn.open(server);
  await using busy = await RawConn.open(server);
  await busy.send(GET);
  await new Promise((r) => setTimeout(r, 30));
  const stopping = server.shutdown(5_000);
  assert.ok(await idle.closed(1000), "the idle connection stayed open");
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
  release();
  const reply = await busy.reply();
  assert.equal(reply.status, 200);
  assert.equal(reply.headers.get("connection"), "close");
  assert.equal(await stopping, true);
  assert.ok(await busy.closed(1000));
});

Deno.test("shutdown cuts off what is still open after its timeout", async () => {
  const never: HttpHandler = () => new Promise(() => {});
  const server = start({}, never);
  await using raw = await RawConn.open(server);
  await raw.send(GET);
  await new Promise((r) => setTimeout(r, 30));
  // The handler never answers, so the connection's loop would wait for ever; shutdown does not.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    server.shutdown(100).then((clean) => (clean ? "clean" : "cut")),
    new Promise<string>((r) => (timer = setTimeout(() => r("hung"), 3_000))),
  ]);
  clearTimeout(timer);
  assert.equal(outcome, "cut");
  assert.ok(await raw.closed(1000));
});

Deno.test("serve() gives the push API its deadlines and connection cap", async () => {
  const server = startServer({
    tcp: false,
    ws: false,
    apiHeaderTimeout: 100,
    apiMaxConnections: 1,
  });
  try {
    const port = server.addrs.api!.port;
    await using silent = new RawConn(await Deno.connect({ hostname: "127.0.0.1", port }));
    await using extra = new RawConn(await Deno.connect({ hostname: "127.0.0.1", port }));
    await extra.send(GET);
    const refused = await extra.reply();
    assert.equal(refused.status, 503);
    assert.deepEqual(JSON.parse(refused.body), {
      code: -503,
      message: "Too many connections",
      data: null,
    });
    assert.equal((await silent.reply()).status, 408);
    assert.ok(await silent.closed(1000));
  } finally {
    await server.shutdown();
  }
});

Deno.test("limits must be positive", () => {
  assert.throws(() => start({ headerTimeout: 0 }), RangeError);
  assert.throws(() => start({ maxConnections: -1 }), RangeError);
});

Deno.test("out of file descriptors, the API logs it once, counts it, keeps its clients and recovers", async () => {
  // Without --allow-all the limit cannot be read, so nothing is lowered to fit: the API runs out.
  // One worker: the log's once-per-interval throttle and the counter are per isolate, and the
  // workers of a process share its descriptors, so each of them would log its own first line.
  const { child, stderr, stdout } = spawnCliUnderUlimit(96, [
    "--allow-net",
    "--allow-env",
    "--allow-read",
  ], ["--workers", "1"]);
  const held: Deno.Conn[] = [];
  try {
    const port = Number((await stderr.line(/Comet listening .*api=127\.0\.0\.1:(\d+)/))[1]);
    const kept = await Deno.connect({ hostname: "127.0.0.1", port });
    held.push(kept);
    const ask = async (conn: Deno.Conn, path: string) => {
      await conn.write(utf8.encode(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
      const buf = new Uint8Array(65536);
      let got = "";
      while (!(got.includes("\r\n\r\n") && got.endsWith("}"))) {
        const n = await conn.read(buf);
        if (n === null) throw new Error(`closed: ${got}`);
        got += text(buf.subarray(0, n));
      }
      return got;
    };
    assert.match(await ask(kept, "/healthz"), /^HTTP\/1\.1 200 /);
    // Many more idle sockets than the process has descriptors for.
    for (let i = 0; i < 150; i++) held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    await stderr.line(/WARN Accept failed: out of file descriptors.*listener=api.*kind=emfile/);
    await new Promise((r) => setTimeout(r, 300));
    // The connection it had is still served, though nothing new gets in.
    assert.match(await ask(kept, "/healthz"), /^HTTP\/1\.1 200 /);
    for (const conn of held.splice(1)) conn.close();
    let metrics = "";
    for (let i = 0; i < 50 && !metrics.includes("comet_accept_errors_total"); i++) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        metrics = await res.text();
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const failed = /comet_accept_errors_total\{listener="api",error="emfile"\} (\d+)/.exec(metrics);
    assert.ok(failed && Number(failed[1]) > 1, metrics);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    // Many failures, one line: the next may come only after the log interval.
    assert.equal(stderr.log.match(/Accept failed/g)?.length, 1, stderr.log);
    assert.equal(await terminate(child, 3_000).then((s) => s.code), 0, stderr.log);
  } finally {
    for (const conn of held) conn.close();
    await stopChild(child, stderr, stdout);
  }
});

Deno.test("out of file descriptors because of clients, the API still lets one connection in at a time", async () => {
  const { child, stderr, stdout } = spawnCliUnderUlimit(96, [
    "--allow-net",
    "--allow-env",
    "--allow-read",
  ], ["--handshake-timeout", "30s"]);
  const held: Deno.Conn[] = [];
  try {
    const m = await stderr.line(/Comet listening tcp=127\.0\.0\.1:(\d+) api=127\.0\.0\.1:(\d+)/);
    const [tcp, api] = [Number(m[1]), Number(m[2])];
    // Clients that have not authenticated yet hold their descriptors until the handshake timeout.
    for (let i = 0; i < 120; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port: tcp }));
    }
    await stderr.line(/WARN Accept failed: out of file descriptors.*listener=tcp/);
    for (let i = 0; i < 3; i++) {
      // Well before any client's descriptor frees up.
      const res = await fetch(`http://127.0.0.1:${api}/metrics`, {
        headers: { connection: "close" },
        signal: AbortSignal.timeout(2_000),
      });
      assert.equal(res.status, 200);
      const failed = /comet_accept_errors_total\{listener="tcp",error="emfile"\} (\d+)/.exec(
        await res.text(),
      );
      assert.ok(failed && Number(failed[1]) > 0);
    }
  } finally {
    for (const conn of held) conn.close();
    await stopChild(child, stderr, stdout);
  }
});
