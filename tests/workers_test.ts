// `--workers N`: the supervisor (src/workers/supervisor.ts) and the `comet` command with
// two workers on shared ports. The in-process tests start real Workers, so the test run
// needs --unstable-net, as `deno task test` passes it.
import assert from "node:assert/strict";
import { parseConfig } from "../src/config.ts";
import { Op } from "../src/protocol/op.ts";
import { Supervisor, workerConfig, workerCount } from "../src/workers/supervisor.ts";
import { TestClient, text, until } from "./_helpers.ts";
import { cli, LineReader, ROOT, stopChild } from "./_process.ts";
import { connectWs, type TransportClient } from "./_transports.ts";

const BIZ = 1000;
const ARGS = ["--tcp", "127.0.0.1:0", "--ws", "off", "--api", "127.0.0.1:0", "--log", "error"];

/** `n` TCP clients in live room `r`, user `first + i` with key `k<first + i>`. */
async function connectMany(port: number, n: number, first = 0): Promise<TestClient[]> {
  const clients: TestClient[] = [];
  for (let i = first; i < first + n; i++) {
    clients.push(
      await TestClient.auth(port, {
        mid: i + 1,
        key: `k${i}`,
        room_id: "live://r",
        accepts: [BIZ],
      }),
    );
  }
  return clients;
}

async function closeAll(clients: TestClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

/** Resolves once `check` holds, polling; throws naming `what` after `timeout` ms. */
async function eventually(check: () => Promise<boolean>, what: string, timeout = 5_000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test("workerCount: auto is one per CPU, a count is kept", () => {
  assert.equal(workerCount("auto"), Math.min(256, navigator.hardwareConcurrency));
  assert.equal(workerCount(3), 3);
});

Deno.test("each worker gets an even share of the process limits and shares every port", () => {
  const cfg = parseConfig([
    ...["--max-connections", "1001", "--max-rooms", "0", "--api-max-connections", "10"],
    ...["--max-connections-per-ip", "7", "--pkg", "127.0.0.1:0"],
  ]);
  const share = workerConfig(cfg, 2);
  assert.equal(share.limits.maxConnections, 501);
  assert.equal(share.limits.maxRooms, Infinity);
  assert.equal(share.apiMaxConnections, 5);
  // Per-IP limits and rates apply in each worker, as given.
  assert.equal(share.limits.maxConnectionsPerIp, 7);
  assert.equal(share.limits.upstreamRate, cfg.limits.upstreamRate);
  for (const addr of [share.tcp, share.ws, share.api, share.pkg]) {
    assert.ok(addr && addr.reusePort === true, JSON.stringify(addr));
  }
  assert.equal(cfg.limits.maxConnections, 1001, "the process's settings are left alone");
  assert.equal((cfg.tcp as { reusePort?: boolean }).reusePort, undefined);
});

Deno.test("two workers on one port: the kernel gives both of them connections", async () => {
  const supervisor = new Supervisor({ config: parseConfig(ARGS), workers: 2 });
  const addrs = await supervisor.start();
  const clients = await connectMany(addrs.tcp!.port, 20);
  try {
    const counts = await supervisor.connections();
    assert.equal(counts.length, 2);
    assert.equal(counts[0]! + counts[1]!, 20, String(counts));
    assert.ok(counts[0]! > 0 && counts[1]! > 0, `all on one worker: ${counts}`);
  } finally {
    await closeAll(clients);
    assert.ok(await supervisor.shutdown(), "the workers stopped in time");
  }
});

Deno.test("a worker that crashes is restarted on the same port; the others keep serving", async () => {
  const supervisor = new Supervisor({ config: parseConfig(ARGS), workers: 2, restartDelay: 50 });
  const addrs = await supervisor.start();
  const port = addrs.tcp!.port;
  const clients = await connectMany(port, 16);
  try {
    const [onFirst] = await supervisor.connections();
    assert.ok(onFirst! > 0 && onFirst! < 16, `worker 0 serves ${onFirst} of 16`);
    supervisor.crash(0);
    // Worker 0's clients read EOF; worker 1's stay.
    const gone = await Promise.all(clients.map((c) => c.closedByServer(2_000)));
    const left = clients.filter((_, i) => !gone[i]);
    assert.equal(clients.length - left.length, onFirst, "worker 0's clients were cut off");
    for (const client of left) {
      const seq = client.sendFrame(Op.Heartbeat);
      assert.equal((await client.nextOp(Op.HeartbeatReply)).seq, seq);
    }
    await eventually(() => Promise.resolve(supervisor.restarts === 1), "worker 0 is restarted");
    // The restart is counted when it begins; the new worker 0 binds the same port a moment
    // later. Clients opened from then on reach both workers again.
    let next = 16;
    let counts: number[] = [];
    await eventually(async () => {
      clients.push(...await connectMany(port, 4, next));
      next += 4;
      counts = await supervisor.connections();
      return counts[0]! > 0;
    }, "the restarted worker serves new clients").catch((err) => {
      throw new Error(`${err.message}: ${counts}, ${left.length} left`);
    });
    assert.equal(counts[0]! + counts[1]!, left.length + next - 16, `${counts}`);
  } finally {
    await closeAll(clients);
    assert.ok(await supervisor.shutdown(), "the workers stopped in time");
  }
});

/** The `data` of a GET on the push API at `port`, on a fresh connection (any worker answers). */
async function apiGet(port: number, path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: "close" } });
  const body = await res.json();
  assert.equal(body.code, 0, path);
  return body.data;
}

/** Asks `times` times (the kernel picks a worker each time): whether every answer held. */
async function everyAnswer(
  port: number,
  path: string,
  check: (data: Record<string, unknown>) => boolean,
  times = 6,
): Promise<boolean> {
  for (let i = 0; i < times; i++) if (!check(await apiGet(port, path))) return false;
  return true;
}

Deno.test("a restarted worker rejoins the bus: room pushes reach both workers, counts exact", async () => {
  // A long first delay leaves time to see the survivor alone on the bus.
  const supervisor = new Supervisor({ config: parseConfig(ARGS), workers: 2, restartDelay: 1_500 });
  const addrs = await supervisor.start();
  const [port, apiPort] = [addrs.tcp!.port, addrs.api!.port];
  const clients = await connectMany(port, 16);
  try {
    await eventually(async () => {
      const counts = await supervisor.connections();
      return counts[0]! > 0 && counts[1]! > 0;
    }, "both workers serve clients");
    supervisor.crash(0);
    const gone = await Promise.all(clients.map((c) => c.closedByServer(1_000)));
    const left = clients.filter((_, i) => !gone[i]);
    // The supervisor told the survivor: the dead worker's figures went with its port.
    const total = (n: number) => (d: Record<string, unknown>) => d.conn_count === n;
    await eventually(() => everyAnswer(apiPort, "/goim/online/total", total(left.length)), "alone");
    assert.equal((await apiGet(apiPort, "/healthz")).workers, 1);
    assert.equal(supervisor.restarts, 0, "still within the restart delay");

    await eventually(() => Promise.resolve(supervisor.restarts === 1), "worker 0 is restarted");
    // Counted when it starts; on the bus (and so listening) a little later.
    await eventually(
      () => everyAnswer(apiPort, "/healthz", (d) => d.workers === 2),
      "the restarted worker says hello",
    );
    await closeAll(clients.filter((_, i) => gone[i]));
    clients.splice(0, clients.length, ...left, ...await connectMany(port, 16, 16));
    await eventually(async () => (await supervisor.connections())[0]! > 0, "worker 0 serves");
    const n = clients.length;
    await eventually(
      () => everyAnswer(apiPort, "/goim/online/total", total(n)),
      `every worker counts ${n} connections`,
    );
    assert.ok(
      await everyAnswer(apiPort, "/goim/online/room?type=live&rooms=r", (d) => d.r === n),
    );
    assert.ok(
      await everyAnswer(apiPort, "/healthz", (d) => d.workers === 2 && d.bus_lost === 0),
    );
    for (let i = 0; i < 4; i++) {
      // Fresh connections, so the kernel spreads the pushes over both workers.
      const res = await fetch(
        `http://127.0.0.1:${apiPort}/goim/push/room?operation=${BIZ}&type=live&room=r`,
        { method: "POST", body: `room${i}`, headers: { connection: "close" } },
      );
      assert.deepEqual(await res.json(), { code: 0, message: "", data: null });
    }
    for (const [i, client] of clients.entries()) {
      const got = () => client.buffered.filter((f) => f.op === BIZ).map((f) => text(f.body));
      await until(() => got().length >= 4, 5_000);
      assert.deepEqual(got().sort(), ["room0", "room1", "room2", "room3"], `client ${i}`);
    }
  } finally {
    await closeAll(clients);
    assert.ok(await supervisor.shutdown(), "the workers stopped in time");
  }
});

Deno.test("comet --workers 2: one listening line; SIGTERM sends op 6 to every client, exit 0", async () => {
  const child = cli(["--workers", "2", ...ARGS.slice(0, -2)]).spawn();
  const stderr = new LineReader(child.stderr);
  const stdout = new LineReader(child.stdout);
  try {
    const m = await stderr.line(
      /Comet listening tcp=127\.0\.0\.1:(\d+) api=127\.0\.0\.1:\d+ auth=open workers=2$/,
    );
    const clients = await connectMany(Number(m[1]), 12);
    try {
      assert.equal(stderr.log.match(/Comet listening/g)?.length, 1, stderr.log);
      const started = Date.now();
      child.kill("SIGTERM");
      for (const client of clients) {
        const bye = await client.nextOp(Op.DisconnectReply, 10_000);
        assert.equal(text(bye.body), "server shutting down");
        assert.ok(await client.closedByServer(5_000));
      }
      const status = await child.status;
      assert.equal(status.code, 0, stderr.log);
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
      await stderr.line(/INFO Stopped/);
      assert.equal(stderr.log.match(/Shutting down/g)?.length, 1, stderr.log);
    } finally {
      await closeAll(clients);
    }
  } finally {
    await stopChild(child, stderr, stdout);
  }
});

// Needs the in-process bus (src/cluster/bus_cluster.ts, BusCluster): without it a push
// reaches only the clients of the worker that took the API request.
Deno.test("comet --workers 2: every push kind through the API reaches TCP and WebSocket clients on every worker", async () => {
  const args = ["--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--api", "127.0.0.1:0"];
  const child = cli(["--workers", "2", ...args]).spawn();
  const stderr = new LineReader(child.stderr);
  const stdout = new LineReader(child.stdout);
  const clients: TestClient[] = [];
  const wsClients: TransportClient[] = [];
  try {
    const m = await stderr.line(
      /Comet listening tcp=127\.0\.0\.1:(\d+) ws=127\.0\.0\.1:(\d+) api=127\.0\.0\.1:(\d+)/,
    );
    const [tcpPort, wsPort, apiPort] = [Number(m[1]), Number(m[2]), Number(m[3])];
    clients.push(...await connectMany(tcpPort, 16));
    // Users and keys 16 on: the key and mid pushes below name them too.
    for (let i = 16; i < 24; i++) {
      const ws = await connectWs(wsPort);
      wsClients.push(ws);
      const auth = { mid: i + 1, key: `k${i}`, room_id: "live://r", accepts: [BIZ] };
      await ws.send(Op.Auth, JSON.stringify(auth));
      assert.equal((await ws.next(5_000)).op, Op.AuthReply);
    }
    const push = async (path: string, body: string) => {
      // Fresh connections, so the kernel spreads the API requests over the workers too.
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`http://127.0.0.1:${apiPort}${path}`, {
          method: "POST",
          body: `${body}${i}`,
          headers: { connection: "close" },
        });
        assert.deepEqual(await res.json(), { code: 0, message: "", data: null });
      }
    };
    await push(`/goim/push/room?operation=${BIZ}&type=live&room=r`, "room");
    await push(`/goim/push/all?operation=${BIZ}`, "all");
    const everyone = [...Array(24).keys()];
    const keys = everyone.map((i) => `keys=k${i}`).join("&");
    await push(`/goim/push/keys?operation=${BIZ}&${keys}`, "keys");
    const mids = everyone.map((i) => `mids=${i + 1}`).join("&");
    await push(`/goim/push/mids?operation=${BIZ}&${mids}`, "mids");
    const want = ["room", "all", "keys", "mids"].flatMap((k) => [0, 1, 2, 3].map((i) => k + i));
    for (const [i, client] of clients.entries()) {
      const got = () => client.buffered.filter((f) => f.op === BIZ).map((f) => text(f.body));
      await until(() => got().length >= want.length, 5_000);
      assert.deepEqual(got().sort(), [...want].sort(), `client ${i}`);
    }
    for (const [i, ws] of wsClients.entries()) {
      const got: string[] = [];
      while (got.length < want.length) {
        const f = await ws.next(5_000);
        if (f.op === BIZ) got.push(text(f.body));
      }
      assert.deepEqual(got.sort(), [...want].sort(), `WebSocket client ${i}`);
    }
  } finally {
    await Promise.all(wsClients.map((ws) => ws.close()));
    await closeAll(clients);
    await stopChild(child, stderr, stdout);
  }
});

Deno.test("comet --workers 2 refuses to start without --unstable-net, naming it", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "src/cli.ts", "--workers", "2"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(out.code, 2, stderr);
  assert.equal(
    stderr,
    "comet: --workers 2 shares each port between workers (reusePort), which needs --unstable-net: run deno with --unstable-net, or pass --workers 1",
  );
});

Deno.test("comet --workers 1 runs without --unstable-net: one isolate, no Worker", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "src/cli.ts", "--workers", "1"]
      .concat(ARGS.slice(0, -2)),
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new LineReader(child.stderr);
  const stdout = new LineReader(child.stdout);
  try {
    const m = await stderr.line(/Comet listening tcp=127\.0\.0\.1:(\d+) api=\S+ auth=open$/);
    await using client = await TestClient.auth(Number(m[1]), { mid: 1, key: "k" });
    child.kill("SIGTERM");
    assert.equal(
      text((await client.nextOp(Op.DisconnectReply, 5_000)).body),
      "server shutting down",
    );
    assert.equal((await child.status).code, 0, stderr.log);
  } finally {
    await stopChild(child, stderr, stdout);
  }
});

Deno.test("comet --workers 2 on a port taken: one line naming the flag, exit status 2", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const out = await cli([
    ...["--workers", "2", "--tcp", `127.0.0.1:${taken.addr.port}`, "--ws", "off", "--api", "off"],
  ]).output();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(out.code, 2, stderr);
  assert.equal(
    stderr,
    `comet: cannot listen: --tcp 127.0.0.1:${taken.addr.port} is already in use`,
  );
});
