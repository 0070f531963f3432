// Three `comet --redis` processes and one redis-server: clients spread over the nodes,
// pushes entering through different nodes reach every target exactly once, counts merge;
// a node killed with SIGKILL drops out (its sessions expire) while the others carry on,
// also through a Redis restart.
import assert from "node:assert/strict";
import { RedisClient } from "../src/cluster/redis_client.ts";
import { Op } from "../src/protocol/op.ts";
import { TestClient, text } from "./_helpers.ts";
import { cli, LineReader, terminate } from "./_process.ts";
import { freePort, redisAvailable, startRedis } from "./_redis.ts";

const ignore = !redisAvailable;
const BIZ = 1000;
const WORKERS = 2;
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One `comet` process on free loopback ports. */
class Node implements AsyncDisposable {
  readonly id: string;
  readonly child: Deno.ChildProcess;
  readonly stderr: LineReader;
  readonly stdout: LineReader;
  tcpPort = 0;
  wsPort = 0;
  apiPort = 0;

  private constructor(id: string, child: Deno.ChildProcess) {
    this.id = id;
    this.child = child;
    this.stderr = new LineReader(child.stderr);
    this.stdout = new LineReader(child.stdout);
  }

  static async start(redisUrl: string, id: string): Promise<Node> {
    const node = new Node(
      id,
      cli([
        ...["--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--api", "127.0.0.1:0"],
        ...["--redis", redisUrl, "--node-id", id, "--advertise", "127.0.0.1"],
        // Two workers each, whatever the machine: each worker is a node, `<id>-w<i>`.
        ...["--workers", String(WORKERS)],
        // Short, so that a killed node's sessions expire and it drops out within the test.
        ...["--session-ttl", "2s", "--report-interval", "200ms", "--heartbeat-timeout", "1s"],
      ]).spawn(),
    );
    try {
      const m = await node.stderr.line(
        /Comet listening tcp=127\.0\.0\.1:(\d+) ws=127\.0\.0\.1:(\d+) api=127\.0\.0\.1:(\d+)/,
      );
      [node.tcpPort, node.wsPort, node.apiPort] = [Number(m[1]), Number(m[2]), Number(m[3])];
    } catch (err) {
      await node[Symbol.asyncDispose]();
      throw err;
    }
    return node;
  }

  async api(path: string, init: RequestInit = {}) {
    const res = await fetch(`http://127.0.0.1:${this.apiPort}${path}`, init);
    return { status: res.status, body: await res.json() };
  }

  async push(path: string, body: string): Promise<void> {
    const res = await this.api(path, { method: "POST", body });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, { code: 0, message: "", data: null });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await terminate(this.child, 5_000);
    await Promise.all([this.stderr.finished, this.stdout.finished]);
  }
}

/** A goim client that heartbeats on its own (the nodes' heartbeat timeout is 1 s). */
class Device implements AsyncDisposable {
  readonly client: TestClient;
  #timer: ReturnType<typeof setInterval>;

  private constructor(client: TestClient) {
    this.client = client;
    this.#timer = setInterval(() => client.sendFrame(Op.Heartbeat), 200);
  }

  static async connect(node: Node, auth: Record<string, unknown>): Promise<Device> {
    return new Device(await TestClient.auth(node.tcpPort, { accepts: [BIZ], ...auth }));
  }

  /** Business messages received so far, taken out of the buffer. */
  take(): string[] {
    return this.client.buffered.splice(0).filter((f) => f.op >= BIZ).map((f) => text(f.body));
  }

  /** The room count of the next heartbeat reply. */
  async online(): Promise<number> {
    const seq = this.client.sendFrame(Op.Heartbeat);
    for (;;) {
      const f = await this.client.nextOp(Op.HeartbeatReply);
      if (f.seq === seq) return new DataView(f.body.buffer, f.body.byteOffset).getInt32(0);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.#timer);
    await this.client.close();
  }
}

async function eventually(check: () => Promise<boolean>, what: string, timeout = 5_000) {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await delay(50);
  }
}

Deno.test("cli: Redis down at start is a one-line error and exit status 1", async () => {
  const port = freePort();
  const out = await cli([
    "--tcp",
    "127.0.0.1:0",
    "--api",
    "off",
    "--redis",
    `redis://127.0.0.1:${port}`,
  ])
    .output();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(out.code, 1, stderr);
  assert.equal(stderr.split("\n").length, 1, stderr);
  assert.match(
    stderr,
    new RegExp(
      `^comet: cannot join the cluster: Cannot connect to Redis at 127\\.0\\.0\\.1:${port}: `,
    ),
  );
});

Deno.test({
  name: "three nodes, one Redis: every push reaches its targets once, whichever node it enters",
  ignore,
  async fn() {
    await using redis = await startRedis();
    const [n1, n2, n3] = await Promise.all(
      ["n1", "n2", "n3"].map((id) => Node.start(redis.url, id)),
    );
    await using _n1 = n1!;
    await using _n2 = n2!;
    await using _n3 = n3!;
    const room = "live://r";
    await using a1 = await Device.connect(n1!, { mid: 1, key: "a1", room_id: room });
    await using a2 = await Device.connect(n2!, { mid: 2, key: "a2", room_id: room });
    await using a3 = await Device.connect(n3!, { mid: 3, key: "a3", room_id: room });
    // user 7: a phone on n1 and a browser on n2
    await using phone = await Device.connect(n1!, { mid: 7, key: "u7-phone" });
    await using web = await Device.connect(n2!, { mid: 7, key: "u7-web" });
    await using other = await Device.connect(n3!, { mid: 9, key: "b", room_id: "live://x" });
    const everyone = [a1, a2, a3, phone, web, other];

    await n2!.push(`/goim/push/keys?operation=${BIZ}&keys=a1&keys=a3`, "keys");
    await n3!.push(`/goim/push/mids?operation=${BIZ}&mids=7`, "mids");
    await n1!.push(`/goim/push/room?operation=${BIZ}&type=live&room=r`, "room");
    await n2!.push(`/goim/push/all?operation=${BIZ}`, "all");
    await eventually(
      () =>
        Promise.resolve(
          everyone.every((d) => d.client.buffered.some((f) => text(f.body) === "all")),
        ),
      "everyone got the broadcast",
    );
    await delay(300); // time for any duplicate to show up
    // Exactly once each; pushes entering different nodes have no order between them.
    const got = (device: Device) => device.take().sort();
    assert.deepEqual(got(a1), ["all", "keys", "room"]);
    assert.deepEqual(got(a2), ["all", "room"]);
    assert.deepEqual(got(a3), ["all", "keys", "room"]);
    assert.deepEqual(got(phone), ["all", "mids"]);
    assert.deepEqual(got(web), ["all", "mids"]);
    assert.deepEqual(got(other), ["all"]);

    // Cluster-wide counts: in heartbeat replies on every node, and from every node's API.
    // Each node refreshes its view every report interval, on its own.
    for (const device of [a1, a2, a3]) {
      await eventually(async () => (await device.online()) === 3, "heartbeat replies count 3");
    }
    for (const node of [n1!, n2!, n3!]) {
      await eventually(async () => {
        const rooms = await node.api("/goim/online/room?type=live&rooms=r&rooms=x");
        return rooms.body.data.r === 3 && rooms.body.data.x === 1;
      }, `${node.id} counts 3 in the room`);
      const total = await node.api("/goim/online/total");
      assert.equal(total.body.data.conn_count, 6);
      const instances = await node.api("/goim/nodes/instances");
      assert.deepEqual(
        instances.body.data.map((n: Record<string, unknown>) => [n.id, n.tcp_port, n.ws_port]),
        [n1!, n2!, n3!].flatMap((n) => [0, 1].map((w) => [`${n.id}-w${w}`, n.tcpPort, n.wsPort])),
      );
      const weighted = await node.api("/goim/nodes/weighted?platform=android");
      assert.deepEqual(
        [...weighted.body.data.nodes].sort(),
        [n1!, n2!, n3!].map((n) => `127.0.0.1:${n.tcpPort}`).sort(),
      );
    }
  },
});

Deno.test({
  name: "kill -9 of a node: its sessions expire, the others carry on, also through a Redis restart",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using redisClient = await RedisClient.connect(redis.url, {
      reconnect: { initialDelay: 20, maxDelay: 200 },
    });
    const [n1, n2, n3] = await Promise.all(
      ["n1", "n2", "n3"].map((id) => Node.start(redis.url, id)),
    );
    await using _n1 = n1!;
    await using _n2 = n2!;
    await using _n3 = n3!;
    const room = "live://r";
    await using x1 = await Device.connect(n1!, { mid: 11, key: "x1", room_id: room });
    await using x2 = await Device.connect(n2!, { mid: 22, key: "x2", room_id: room });
    await using x3 = await Device.connect(n3!, { mid: 33, key: "x3", room_id: room });
    await eventually(async () => (await x1.online()) === 3, "the room counts 3");
    assert.equal(await redisClient.command("EXISTS", "comet:key:x3", "comet:mid:33"), 2);

    n3!.child.kill("SIGKILL");
    assert.equal((await n3!.child.status).signal, "SIGKILL");
    assert.ok(await x3.client.closedByServer(), "the killed node's client is still connected");

    // The survivors keep pushing to each other at once.
    await n1!.push(`/goim/push/room?operation=${BIZ}&type=live&room=r`, "after kill");
    await n2!.push(`/goim/push/keys?operation=${BIZ}&keys=x1&keys=x3`, "keys after kill");
    assert.equal(text((await x2.client.nextOp(BIZ)).body), "after kill");
    assert.equal(text((await x1.client.nextOp(BIZ)).body), "after kill");
    assert.equal(text((await x1.client.nextOp(BIZ)).body), "keys after kill");

    // Within three report intervals it is out of the node list and the counts ...
    await eventually(async () => {
      const instances = await n1!.api("/goim/nodes/instances");
      return instances.body.data.length === 2 * WORKERS;
    }, "n3 left the node list");
    await eventually(async () => (await x1.online()) === 2, "the room counts 2");
    await eventually(async () => {
      const rooms = await n2!.api("/goim/online/room?type=live&rooms=r");
      return rooms.body.data.r === 2;
    }, "n2 counts 2 in the room");
    // ... and its sessions expire with their TTL (2 s) while the live ones are renewed.
    await eventually(
      async () => Number(await redisClient.command("EXISTS", "comet:key:x3", "comet:mid:33")) === 0,
      "x3's registry entries expired",
    );
    assert.equal(await redisClient.command("EXISTS", "comet:key:x1", "comet:key:x2"), 2);
    // The room lists worker nodes (`n1-w0` ...): by process, n1 and n2.
    const roomNodes = (await redisClient.command("SMEMBERS", "comet:room:live://r") as Uint8Array[])
      .map((id) => text(id).replace(/-w\d+$/, ""));
    assert.deepEqual([...new Set(roomNodes)].sort(), ["n1", "n2"]);

    // Redis restarts under traffic: the nodes reconnect, resubscribe and re-register.
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const traffic = (async () => {
      while (!stop) {
        try {
          const res = await n2!.api(`/goim/push/room?operation=${BIZ}&type=live&room=r`, {
            method: "POST",
            body: `t${sent++}`,
          });
          if (res.body.code !== 0) failures.push(JSON.stringify(res.body));
        } catch (err) {
          failures.push(String(err));
        }
        await delay(10);
      }
    })();
    try {
      await delay(100);
      await redis.restart();
      await eventually(async () => {
        const health = await Promise.all([n1!.api("/healthz"), n2!.api("/healthz")]);
        return health.every((h) => h.body.data.status === "ok");
      }, "both nodes are healthy again");
      await eventually(
        async () =>
          Number(await redisClient.command("EXISTS", "comet:key:x1", "comet:key:x2")) === 2 &&
          Number(await redisClient.command("SCARD", "comet:room:live://r")) === 2,
        "sessions and rooms are registered again",
      );
    } finally {
      stop = true;
      await traffic;
    }
    assert.deepEqual(failures, []);
    assert.ok(sent > 5, `only ${sent} pushes during the restart`);
    await delay(100);
    x1.take();
    x2.take();
    // One at a time: pushes entering different nodes have no order between them.
    await n1!.push(`/goim/push/keys?operation=${BIZ}&keys=x2`, "recovered");
    assert.equal(text((await x2.client.nextOp(BIZ)).body), "recovered");
    await n2!.push(`/goim/push/room?operation=${BIZ}&type=live&room=r`, "room recovered");
    assert.equal(text((await x2.client.nextOp(BIZ)).body), "room recovered");
    assert.equal(text((await x1.client.nextOp(BIZ)).body), "room recovered");
    for (const node of [n1!, n2!]) {
      assert.ok(!/ERROR/.test(node.stderr.log), node.stderr.log);
    }
  },
});
