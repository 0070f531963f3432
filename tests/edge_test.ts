// Tests of the edge entry: src/edge.ts under `deno serve` in a child process, configured
// by environment variables, and its configuration reader on its own.
import assert from "node:assert/strict";
import { ConfigError } from "../src/config.ts";
import { readEdgeConfig } from "../src/edge.ts";
import { BrowserClient } from "./_browser_client.ts";
import { LineReader, ROOT, stopChild } from "./_process.ts";

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** `deno serve` of src/edge.ts on a free loopback port, with `env` added. */
class EdgeProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: LineReader;
  readonly stdout: LineReader;
  port = 0;

  constructor(env: Record<string, string>, permissions = ["--allow-env", "--allow-net"]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["serve", "--port", "0", "--host", "127.0.0.1", ...permissions, "src/edge.ts"],
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
  ): Promise<EdgeProcess> {
    const p = new EdgeProcess(env, permissions);
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

Deno.test("deno serve src/edge.ts serves /sub and the push API at one origin", async () => {
  await using edge = await EdgeProcess.start({ COMET_API_TOKEN: "t0k" });
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
  await using edge = await EdgeProcess.start({ COMET_API_TOKEN: "", COMET_QUEUE: "16" });
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
  await using edge = await EdgeProcess.start({ COMET_API_TOKEN: "t", COMET_SLOW: "sometimes" });
  for (let i = 0; i < 2; i++) {
    const res = await edge.fetch("/healthz");
    assert.equal(res.status, 500);
    assert.match((await res.json()).message, /misconfigured/);
  }
  await edge.stderr.line(/ERROR Comet is misconfigured.*COMET_SLOW/);
  assert.equal((edge.stderr.log.match(/misconfigured/g) ?? []).length, 1, edge.stderr.log);
});

Deno.test("without --allow-env the edge entry runs on defaults, API off", async () => {
  await using edge = await EdgeProcess.start({ COMET_API_TOKEN: "t0k" }, ["--allow-net"]);
  const res = await edge.fetch(PUSH, {
    method: "POST",
    headers: { authorization: "Bearer t0k" },
    body: "x",
  });
  assert.equal(res.status, 503);
  await res.body?.cancel();
});

Deno.test("readEdgeConfig reads durations, sizes and policies, naming a bad variable", () => {
  const read = (env: Record<string, string>) => readEdgeConfig((name) => env[name]);
  assert.deepEqual(read({}), {
    handshakeTimeout: 5_000,
    heartbeatTimeout: 480_000,
    maxBody: 4096,
    queueSize: 128,
    slow: "close",
    log: "info",
  });
  assert.deepEqual(
    read({
      COMET_API_TOKEN: "s3cret",
      COMET_HANDSHAKE_TIMEOUT: "2s",
      COMET_HEARTBEAT_TIMEOUT: "1.5m",
      COMET_MAX_BODY: "0",
      COMET_QUEUE: "16",
      COMET_SLOW: "drop",
      COMET_LOG: "debug",
    }),
    {
      apiToken: "s3cret",
      handshakeTimeout: 2_000,
      heartbeatTimeout: 90_000,
      maxBody: 0,
      queueSize: 16,
      slow: "drop",
      log: "debug",
    },
  );
  // An empty variable is an unset one.
  assert.equal(read({ COMET_API_TOKEN: "", COMET_QUEUE: " " }).apiToken, undefined);
  for (
    const [name, value] of [
      ["COMET_HANDSHAKE_TIMEOUT", "5"],
      ["COMET_HEARTBEAT_TIMEOUT", "-1m"],
      ["COMET_MAX_BODY", "4k"],
      ["COMET_QUEUE", "0"],
      ["COMET_SLOW", "later"],
      ["COMET_LOG", "loud"],
    ]
  ) {
    assert.throws(
      () => read({ [name!]: value! }),
      (err) => err instanceof ConfigError && err.message.startsWith(`Invalid ${name}: `),
    );
  }
});
