// Tests of the edge entry: src/edge.ts under `deno serve` in a child process, configured
// by environment variables, and its configuration reader on its own.
import assert from "node:assert/strict";
import { ConfigError, listSettings } from "../src/config.ts";
import { readEdgeConfig } from "../src/edge.ts";
import { Op } from "../src/protocol/op.ts";
import { BrowserClient } from "./_browser_client.ts";
import { goimMessages } from "./_ws_client.ts";
import { hmacKey, nowSeconds, SECRET, sign } from "./_jwt.ts";
import { LineReader, ROOT, stopChild } from "./_process.ts";

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** `deno serve` of src/edge.ts on a free loopback port, with `env` added. */
class EdgeProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: LineReader;
  readonly stdout: LineReader;
  port = 0;

  constructor(
    env: Record<string, string>,
    permissions = ["--allow-env", "--allow-net"],
    serveFlags: string[] = [],
  ) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "serve",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        ...serveFlags,
        ...permissions,
        "src/edge.ts",
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.stderr = new LineReader(this.child.stderr);
    this.stdout = new LineReader(this.child.stdout);
  }

  /** Resolves once `deno serve` reports its address (on stderr). */
  static async start(
    env: Record<string, string>,
    permissions?: string[],
    serveFlags?: string[],
  ): Promise<EdgeProcess> {
    const p = new EdgeProcess(env, permissions, serveFlags);
    try {
      const m = await p.stderr.line(/Listening on http:\/\/127\.0\.0\.1:(\d+)\//);
      p.port = Number(m[1]);
    } catch (err) {
      await p[Symbol.asyncDispose]();
      throw err;
    }
    return p;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/sub`;
  }

  fetch(path: string, init?: RequestInit): Promise<Response> {
    return fetch(`http://127.0.0.1:${this.port}${path}`, init);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await stopChild(this.child, this.stderr, this.stdout);
  }
}

const PUSH = "/goim/push/room?operation=1000&type=live&room=edge";

/** Open auth, which the edge serves only when told to. */
const OPEN = { COMET_INSECURE_OPEN_AUTH: "1" };

/** Whether a WebSocket to `url` opens at all; closes it if it does. */
async function upgrades(url: string): Promise<boolean> {
  const ws = new WebSocket(url);
  let opened = false;
  const closed = new Promise((resolve) => ws.onclose = resolve);
  ws.onopen = () => {
    opened = true;
    ws.close();
  };
  await closed;
  return opened;
}

const OPEN_REFUSED =
  "Open auth lets any client claim any user; refusing to serve: set COMET_AUTH=jwt or COMET_AUTH=webhook, or COMET_INSECURE_OPEN_AUTH=1";

Deno.test("deno serve src/edge.ts serves /sub and the push API at one origin", async () => {
  await using edge = await EdgeProcess.start({ COMET_API_TOKEN: "t0k", ...OPEN });
  await using client = await BrowserClient.auth(edge.url, {
    mid: 1,
    key: "edge-1",
    room_id: "live://edge",
    accepts: [1000],
  });

  let res = await edge.fetch(PUSH, {
    method: "POST",
    headers: { authorization: "Bearer t0k" },
    body: "hello edge",
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).code, 0);
  const f = await client.frame();
  assert.deepEqual([f.op, text(f.body)], [1000, "hello edge"]);

  res = await edge.fetch(PUSH, { method: "POST", body: "no token" });
  assert.equal(res.status, 401);
  assert.equal((await res.json()).code, -401);
  assert.ok(await client.inbox.silent(100));

  res = await edge.fetch("/goim/online/room?type=live&rooms=edge", {
    headers: { authorization: "Bearer t0k" },
  });
  assert.deepEqual((await res.json()).data, { edge: 1 });

  // On SIGTERM deno serve closes WebSockets with 1001 ("going away") and exits cleanly.
  edge.child.kill("SIGTERM");
  const closed = await client.closed;
  assert.equal(closed.code, 1001);
  const status = await edge.child.status;
  assert.equal(status.code, 0, edge.stderr.log);
});

Deno.test("without COMET_API_TOKEN the API answers 503 and a warning is logged once", async () => {
  await using edge = await EdgeProcess.start({
    COMET_API_TOKEN: "",
    COMET_QUEUE: "16",
    ...OPEN,
  });
  for (let i = 0; i < 2; i++) {
    const res = await edge.fetch(PUSH, { method: "POST", body: "x" });
    assert.equal(res.status, 503);
    const envelope = await res.json();
    assert.equal(envelope.code, -503);
    assert.match(envelope.message, /COMET_API_TOKEN/);
  }
  // Clients still connect.
  await using client = await BrowserClient.auth(edge.url, { key: "k", room_id: "live://edge" });
  assert.equal(client.ws.readyState, WebSocket.OPEN);
  await edge.stderr.line(/WARN COMET_API_TOKEN is not set/);
  const warnings = edge.stderr.log.match(/COMET_API_TOKEN is not set/g) ?? [];
  assert.equal(warnings.length, 1, edge.stderr.log);
});

Deno.test("an invalid variable fails every request with 500 and is logged once", async () => {
  await using edge = await EdgeProcess.start({
    COMET_API_TOKEN: "t",
    COMET_SLOW: "sometimes",
    ...OPEN,
  });
  for (let i = 0; i < 2; i++) {
    const res = await edge.fetch("/healthz");
    assert.equal(res.status, 500);
    assert.match((await res.json()).message, /misconfigured/);
  }
  await edge.stderr.line(
    /ERROR Comet is misconfigured.* error="Invalid value for COMET_SLOW: Must be close or drop: sometimes"$/,
  );
  assert.equal((edge.stderr.log.match(/misconfigured/g) ?? []).length, 1, edge.stderr.log);
});

Deno.test("without --allow-env the edge entry cannot opt in to open auth and refuses", async () => {
  await using edge = await EdgeProcess.start({ COMET_API_TOKEN: "t0k", ...OPEN }, [
    "--allow-net",
  ]);
  const res = await edge.fetch(PUSH, {
    method: "POST",
    headers: { authorization: "Bearer t0k" },
    body: "x",
  });
  assert.equal(res.status, 500);
  await res.body?.cancel();
  await edge.stderr.line(/WARN COMET_\* variables the process may not read count as unset/);
  await edge.stderr.line(/ERROR Comet is misconfigured.*Open auth/);
});

Deno.test("the edge refuses open auth without COMET_INSECURE_OPEN_AUTH: no claiming mid 42", async () => {
  await using edge = await EdgeProcess.start({ COMET_API_TOKEN: "t" });
  // A client that would claim mid 42 with no credential is not even upgraded.
  assert.equal(await upgrades(edge.url), false);
  const res = await edge.fetch("/goim/push/mids?operation=1000&mids=42", {
    method: "POST",
    headers: { authorization: "Bearer t" },
    body: "for user 42",
  });
  assert.equal(res.status, 500);
  assert.equal((await res.json()).message, "Comet is misconfigured; see the server log");
  const m = await edge.stderr.line(/ERROR Comet is misconfigured.* error="(.*)"$/);
  assert.equal(m[1], OPEN_REFUSED);
  assert.equal((edge.stderr.log.match(/misconfigured/g) ?? []).length, 1, edge.stderr.log);
});

Deno.test("the edge authenticates with COMET_AUTH=jwt and COMET_JWT_SECRET", async () => {
  await using edge = await EdgeProcess.start({
    COMET_API_TOKEN: "t",
    COMET_AUTH: "jwt",
    COMET_JWT_SECRET: SECRET,
  });
  const token = await sign("HS256", await hmacKey(), { sub: "42", exp: nowSeconds() + 60 });
  await using user = await BrowserClient.auth(edge.url, { token, accepts: [1000] });

  // Claiming mid 42 in goim's auth JSON, with no token, is refused.
  await using mallory = await BrowserClient.open(edge.url);
  mallory.send(Op.Auth, JSON.stringify({ mid: 42, key: "mallory", accepts: [1000] }));
  const bye = await mallory.frame();
  assert.equal(bye.op, Op.DisconnectReply);
  assert.match(text(bye.body), /^auth failed: /);
  await mallory.closed;

  const res = await edge.fetch("/goim/push/mids?operation=1000&mids=42", {
    method: "POST",
    headers: { authorization: "Bearer t" },
    body: "for user 42",
  });
  assert.equal((await res.json()).code, 0);
  const f = await user.frame();
  assert.deepEqual([f.op, text(f.body)], [1000, "for user 42"]);
});

Deno.test("a limit set at the edge takes effect: COMET_UPSTREAM_RATE=1", async () => {
  await using edge = await EdgeProcess.start({ COMET_UPSTREAM_RATE: "1", ...OPEN });
  await using client = await BrowserClient.auth(edge.url, { mid: 1, key: "chatty" });
  client.send(Op.SendMsg, "one");
  assert.equal((await client.frame()).op, Op.SendMsgReply);
  // The command's default, 100 a second, would let this one through too.
  client.send(Op.SendMsg, "two");
  const bye = await client.frame();
  assert.deepEqual([bye.op, text(bye.body)], [
    Op.DisconnectReply,
    "rate limit: upstream messages",
  ]);
});

Deno.test("readEdgeConfig reads the command's settings from their variables", () => {
  const read = (env: Record<string, string>) => readEdgeConfig((name) => env[name]);
  const plain = read(OPEN);
  assert.equal(plain.auth, "open");
  assert.equal(plain.apiToken, undefined);
  assert.equal(plain.handshakeTimeout, 5_000);
  assert.equal(plain.queueSize, 128);
  // The command's limits, not none.
  assert.equal(plain.limits.upstreamRate, 100);
  assert.equal(plain.limits.maxConnectionsPerIp, 1_000);
  const cfg = read({
    COMET_API_TOKEN: "s3cret",
    COMET_AUTH: "jwt",
    COMET_JWT_SECRET: SECRET,
    COMET_JWT_AUDIENCE: "comet",
    COMET_HANDSHAKE_TIMEOUT: "2s",
    COMET_HEARTBEAT_TIMEOUT: "1.5m",
    COMET_MAX_BODY: "0",
    COMET_QUEUE: "16",
    COMET_SLOW: "drop",
    COMET_LOG: "debug",
    COMET_LOG_FORMAT: "json",
    COMET_TRACE_MID: "7,8",
    COMET_MAX_CONNECTIONS: "10",
    COMET_UPSTREAM_RATE: "0",
    COMET_WRITE_BURST: "32",
  });
  assert.equal(cfg.apiToken, "s3cret");
  assert.deepEqual([cfg.auth, cfg.jwtSecret, cfg.jwtAlg, cfg.jwtAudience], [
    "jwt",
    SECRET,
    "HS256",
    "comet",
  ]);
  assert.deepEqual([cfg.handshakeTimeout, cfg.heartbeatTimeout], [2_000, 90_000]);
  assert.deepEqual([cfg.maxBody, cfg.queueSize, cfg.slow, cfg.writeBurst], [0, 16, "drop", 32]);
  assert.deepEqual([cfg.log, cfg.logFormat, cfg.traceMids], ["debug", "json", [7, 8]]);
  assert.deepEqual([cfg.limits.maxConnections, cfg.limits.upstreamRate], [10, Infinity]);
  // An empty variable is an unset one.
  assert.equal(read({ ...OPEN, COMET_API_TOKEN: "", COMET_QUEUE: " " }).apiToken, undefined);
});

Deno.test("readEdgeConfig refuses open auth unless COMET_INSECURE_OPEN_AUTH says 1", () => {
  const read = (env: Record<string, string>) => () => readEdgeConfig((name) => env[name]);
  for (const env of [{}, { COMET_AUTH: "open" }, { COMET_INSECURE_OPEN_AUTH: "0" }]) {
    assert.throws(read(env), (err) => err instanceof ConfigError && err.message === OPEN_REFUSED);
  }
  for (const yes of ["1", "true", "TRUE"]) {
    assert.equal(read({ COMET_INSECURE_OPEN_AUTH: yes })().insecureOpenAuth, true);
  }
});

Deno.test("readEdgeConfig names the variable at fault", () => {
  const cases: [Record<string, string>, string][] = [
    [{ COMET_HANDSHAKE_TIMEOUT: "5" }, "Invalid value for COMET_HANDSHAKE_TIMEOUT: "],
    [{ COMET_MAX_BODY: "4k" }, "Invalid value for COMET_MAX_BODY: "],
    [{ COMET_QUEUE: "0" }, "Invalid value for COMET_QUEUE: "],
    [{ COMET_SLOW: "later" }, "Invalid value for COMET_SLOW: Must be close or drop: later"],
    [{ COMET_LOG: "loud" }, "Invalid value for COMET_LOG: "],
    [
      { COMET_UPSTREAM_RATE: "fast" },
      "Invalid value for COMET_UPSTREAM_RATE: Must be an integer of at least 0: fast",
    ],
    [
      { COMET_INSECURE_OPEN_AUTH: "yes" },
      "Invalid value for COMET_INSECURE_OPEN_AUTH: Must be 1, 0, true or false: yes",
    ],
    [
      { COMET_AUTH: "jwt" },
      "COMET_AUTH=jwt needs a key: COMET_JWT_SECRET or COMET_JWT_PUBLIC_KEY",
    ],
    [{ COMET_AUTH: "jwt", COMET_JWT_SECRET: "short" }, "Invalid value for COMET_JWT_SECRET: "],
    [{ COMET_AUTH: "webhook" }, "COMET_AUTH=webhook needs COMET_WEBHOOK_URL"],
    [
      { COMET_AUTH: "jwt", COMET_JWT_SECRET: SECRET, COMET_JWT_PUBLIC_KEY: "k.pem" },
      "COMET_JWT_SECRET and COMET_JWT_PUBLIC_KEY exclude each other: give one",
    ],
    [
      { COMET_TRACE_MID: "7", COMET_LOG: "warn" },
      "COMET_TRACE_MID logs at info: it needs COMET_LOG=info or debug, not warn",
    ],
    [
      { COMET_REDIS: "redis://127.0.0.1:6379" },
      "COMET_REDIS is not for the edge: an edge hub is not a cluster node",
    ],
    [{ COMET_TCP: ":3101" }, "COMET_TCP is not for the edge: deno serve or the platform owns"],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => readEdgeConfig((name) => ({ ...OPEN, ...env } as Record<string, string>)[name]),
      (err) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.ok(err.message.startsWith(message), `${err.message}\n  wanted: ${message}`);
        return true;
      },
    );
  }
});

Deno.test("every flag's variable is read at the edge, or refused as the module doc says", async () => {
  const asked = new Set<string>();
  readEdgeConfig((name) => {
    asked.add(name);
    return (OPEN as Record<string, string>)[name];
  });
  const refused: string[] = [];
  for (const { flag, variable } of listSettings()) {
    assert.ok(asked.has(variable), `${flag}: ${variable} is not read`);
    try {
      readEdgeConfig((name) => ({ ...OPEN, [variable]: "1" } as Record<string, string>)[name]);
    } catch (err) {
      if ((err as Error).message.startsWith(`${variable} is not for the edge: `)) {
        refused.push(variable);
      }
    }
  }
  const doc = await Deno.readTextFile(new URL("../src/edge.ts", import.meta.url));
  const paragraph = /\* Refused here,[^]*?\.\n/.exec(doc)?.[0] ?? "";
  const documented = paragraph.match(/COMET_[A-Z_]+/g) ?? [];
  assert.deepEqual([...documented].sort(), refused.sort());
  assert.ok(refused.includes("COMET_REDIS") && refused.includes("COMET_TLS_CERT"), refused.join());
});

Deno.test("every COMET_ variable the edge doc, the README and docs/ name is a setting", async () => {
  const known = new Set(listSettings().map((s) => s.variable));
  const docs = [...Deno.readDirSync(new URL("../docs/", import.meta.url))]
    .filter((e) => e.name.endsWith(".md")).map((e) => `../docs/${e.name}`);
  assert.ok(docs.includes("../docs/configuration.md"), docs.join());
  for (const file of ["../src/edge.ts", "../README.md", ...docs]) {
    const body = await Deno.readTextFile(new URL(file, import.meta.url));
    for (const name of body.match(/\bCOMET_[A-Z][A-Z_]*\b/g) ?? []) {
      assert.ok(known.has(name), `${file} names ${name}, which no flag has`);
    }
  }
});

Deno.test("deno serve --parallel: every push reaches every client of every isolate", async () => {
  await using edge = await EdgeProcess.start(
    { COMET_API_TOKEN: "t0k", DENO_JOBS: "2", ...OPEN },
    undefined,
    ["--parallel"],
  );
  const auth = { headers: { authorization: "Bearer t0k" } };
  const json = async (path: string) => (await (await edge.fetch(path, auth)).json()).data;
  /** Connections per isolate, as /metrics labels them. */
  const perWorker = async () => {
    const text = await (await edge.fetch("/metrics", auth)).text();
    return [...text.matchAll(/^comet_worker_connections\{worker="\d+"\} (\d+)$/gm)].map((m) =>
      Number(m[1])
    );
  };
  const clients: BrowserClient[] = [];
  try {
    // The kernel spreads connections over the isolates; open more until both have some.
    let spread: number[] = [];
    while (clients.length < 8 || (spread.filter((n) => n > 0).length < 2 && clients.length < 24)) {
      clients.push(
        await BrowserClient.auth(edge.url, {
          mid: clients.length + 1,
          key: `p${clients.length}`,
          room_id: "live://edge",
          accepts: [1000],
        }),
      );
      if (clients.length >= 8) spread = await perWorker();
    }
    const n = clients.length;
    const deadline = Date.now() + 3000;
    while ((await json("/goim/online/room?type=live&rooms=edge")).edge !== n) {
      assert.ok(Date.now() < deadline, "the isolates' counts add up");
      await new Promise((r) => setTimeout(r, 20));
    }
    spread = await perWorker();
    assert.equal(spread.length, 2, "two isolates answer /metrics");
    assert.ok(spread.every((c) => c > 0), `both isolates hold clients: ${spread}`);
    assert.equal(spread[0]! + spread[1]!, n);
    assert.deepEqual(await json("/goim/online/total"), { ip_count: 1, conn_count: n });

    for (const path of [PUSH, "/goim/push/all?operation=1000"]) {
      const res = await edge.fetch(path, { method: "POST", ...auth, body: path });
      assert.equal((await res.json()).code, 0);
    }
    for (const c of clients) {
      const got: string[] = [];
      while (got.length < 2) {
        for (const f of goimMessages(await c.inbox.take())) {
          if (f.op === 1000) got.push(text(f.body));
        }
      }
      assert.deepEqual(got.sort(), ["/goim/push/all?operation=1000", PUSH].sort());
    }
    // The bus does not hold the process open after SIGTERM.
    edge.child.kill("SIGTERM");
    assert.equal((await edge.child.status).code, 0, edge.stderr.log);
  } finally {
    for (const c of clients) await c[Symbol.asyncDispose]();
  }
});
