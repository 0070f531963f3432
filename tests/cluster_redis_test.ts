// RedisCluster in-process: several serve() nodes sharing one throwaway redis-server
// (tests/_redis.ts). Routing reaches exactly the targets, exactly once, whichever node a
// push enters; counts merge; nodes list; Redis lost and regained under traffic.
import assert from "node:assert/strict";
import { decodeEnvelope, encodeEnvelope } from "../src/cluster/envelope.ts";
import { RedisClient, RedisConnectionError, RedisSubscriber } from "../src/cluster/redis_client.ts";
import { RedisCluster, type RedisClusterOptions } from "../src/cluster/redis_cluster.ts";
import { replyText } from "../src/cluster/resp.ts";
import { silentLogger } from "../src/log.ts";
import type { Frame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { ProtocolError } from "../src/protocol/protocol_error.ts";
import type { CometServer, ServeOptions } from "../src/serve.ts";
import { api, startServer, TestClient, text, until } from "./_helpers.ts";
import { freePort, redisAvailable, type RedisServer, startRedis } from "./_redis.ts";
import { VERSION } from "../src/version.ts";

const ignore = !redisAvailable;
const BIZ = 1000;
const fast = { initialDelay: 20, maxDelay: 200, jitter: 0 };

/** A few nodes on one Redis; disposing shuts them down (clients first). */
class Cluster implements AsyncDisposable {
  nodes: CometServer[] = [];
  clients: TestClient[] = [];

  static async start(
    redis: RedisServer,
    ids: string[],
    options: RedisClusterOptions = {},
    serveOptions: ServeOptions = {},
  ): Promise<Cluster> {
    const cluster = new Cluster();
    try {
      for (const nodeId of ids) {
        const redisCluster = await RedisCluster.connect(redis.url, {
          nodeId,
          reportInterval: 100,
          reconnect: fast,
          logger: silentLogger,
          ...options,
        });
        cluster.nodes.push(
          startServer({ cluster: redisCluster, closeGrace: 200, ...serveOptions }),
        );
      }
    } catch (err) {
      await cluster[Symbol.asyncDispose]();
      throw err;
    }
    return cluster;
  }

  node(id: string): CometServer {
    const node = this.nodes.find((n) => n.cluster.nodeId === id);
    if (!node) throw new Error(`No node ${id}`);
    return node;
  }

  async connect(id: string, auth: Record<string, unknown>): Promise<TestClient> {
    const client = await TestClient.auth(this.node(id).addrs.tcp!.port, auth);
    this.clients.push(client);
    return client;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
    await Promise.all(this.nodes.map((n) => n.shutdown()));
  }
}

async function push(node: CometServer, path: string, body: string) {
  const res = await api(node, path, { method: "POST", body });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.code, 0, JSON.stringify(res.body));
  return res.body;
}

/** Business frames received so far, taken out of the client's buffer. */
function business(client: TestClient): string[] {
  const frames: Frame[] = client.buffered.splice(0);
  return frames.filter((f) => f.op >= BIZ).map((f) => text(f.body));
}

const settle = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));

async function heartbeatOnline(client: TestClient): Promise<number> {
  const seq = client.sendFrame(Op.Heartbeat);
  for (;;) {
    const frame = await client.nextOp(Op.HeartbeatReply);
    if (frame.seq === seq) {
      return new DataView(frame.body.buffer, frame.body.byteOffset).getInt32(0);
    }
  }
}

// --- no server needed ----------------------------------------------------------

Deno.test("envelope: every kind round-trips, the body is a view, junk is refused", () => {
  const body = new TextEncoder().encode("hello");
  for (
    const envelope of [
      { kind: "keys", from: "n1", op: 1000, keys: ["a", "b"], body },
      { kind: "mids", from: "n1", op: -1, mids: [1, 2 ** 40], body },
      { kind: "room", from: "n2", op: 1001, room: "live://1", body },
      { kind: "all", from: "n3", op: 0x7fffffff, speed: 12.5, body },
    ] as const
  ) {
    const bytes = encodeEnvelope(envelope);
    const decoded = decodeEnvelope(bytes);
    assert.deepEqual({ ...decoded, body: text(decoded.body) }, { ...envelope, body: "hello" });
    assert.equal(decoded.body.buffer, bytes.buffer);
  }
  const good = encodeEnvelope({ kind: "room", from: "n", op: 1, room: "r", body });
  for (
    const bad of [
      good.subarray(0, 5),
      Uint8Array.of(2, ...good.subarray(1)),
      Uint8Array.of(1, 9, ...good.subarray(2)),
      Uint8Array.of(1, 1, ...good.subarray(2)), // a room header under the keys kind
    ]
  ) {
    assert.throws(() => decodeEnvelope(bad), ProtocolError);
  }
});

Deno.test("RedisCluster.connect with Redis down fails with a clear error", async () => {
  const port = freePort();
  await assert.rejects(
    RedisCluster.connect(`redis://127.0.0.1:${port}`, { nodeId: "n1" }),
    (err: unknown) => {
      assert.ok(err instanceof RedisConnectionError, String(err));
      assert.match(
        err.message,
        new RegExp(`^Cannot connect to Redis at 127\\.0\\.0\\.1:${port}: `),
      );
      return true;
    },
  );
});

Deno.test("RedisCluster refuses a bad node id and durations before connecting", () => {
  for (const nodeId of ["", "has space", "x".repeat(65), "a:b"]) {
    assert.throws(() => new RedisCluster("redis://127.0.0.1:1", { nodeId }), TypeError, nodeId);
  }
  assert.throws(() => new RedisCluster("redis://127.0.0.1:1", { reportInterval: 0 }), RangeError);
  assert.throws(() => new RedisCluster("redis://127.0.0.1:1", { sessionTtl: -1 }), RangeError);
  assert.throws(() => new RedisCluster("http://127.0.0.1:1"), TypeError);
});

// --- routing -------------------------------------------------------------------

Deno.test({
  name: "keys, mids, room and all reach exactly their targets once, entering anywhere",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await Cluster.start(redis, ["n1", "n2", "n3"]);
    const room = "live://r";
    const a1 = await cluster.connect("n1", { mid: 1, key: "a1", room_id: room, accepts: [BIZ] });
    const a2 = await cluster.connect("n2", { mid: 2, key: "a2", room_id: room, accepts: [BIZ] });
    const a3 = await cluster.connect("n3", { mid: 3, key: "a3", room_id: room, accepts: [BIZ] });
    // user 7 has a device on n2 and one on n3, none on n1
    const phone = await cluster.connect("n2", { mid: 7, key: "u7-phone", accepts: [BIZ] });
    const web = await cluster.connect("n3", {
      mid: 7,
      key: "u7-web",
      room_id: "live://other",
      accepts: [BIZ],
    });
    const bystander = await cluster.connect("n1", { mid: 9, key: "b", accepts: [BIZ] });
    const all = [a1, a2, a3, phone, web, bystander];

    await push(cluster.node("n1"), `/goim/push/keys?operation=${BIZ}&keys=a2&keys=a3&keys=a1`, "k");
    await push(cluster.node("n1"), `/goim/push/mids?operation=${BIZ}&mids=7`, "m");
    await push(cluster.node("n2"), `/goim/push/room?operation=${BIZ}&type=live&room=r`, "r");
    await push(cluster.node("n3"), `/goim/push/all?operation=${BIZ}`, "all");
    // Each push is asynchronous on the far nodes; give every stray copy time to show up.
    await until(() => all.every((c) => c.buffered.some((f) => text(f.body) === "all")));
    await settle();

    // Exactly once each; pushes entering different nodes have no order between them.
    const got = (client: TestClient) => business(client).sort();
    assert.deepEqual(got(a1), ["all", "k", "r"]);
    assert.deepEqual(got(a2), ["all", "k", "r"]);
    assert.deepEqual(got(a3), ["all", "k", "r"]);
    assert.deepEqual(got(phone), ["all", "m"]);
    assert.deepEqual(got(web), ["all", "m"]);
    assert.deepEqual(got(bystander), ["all"]);

    // One envelope per node that holds targets; `all` is one publish, not looped back.
    const [n1, n2, n3] = ["n1", "n2", "n3"].map((id) => cluster.node(id).cluster as RedisCluster);
    assert.equal(n1!.stats.sent, 2 + 2); // keys: n2, n3; mids: n2, n3
    // With streams on (the default), a room push comes back to its own node too, through Redis.
    assert.equal(n2!.stats.sent, 3); // room: n1, n2, n3
    assert.equal(n3!.stats.sent, 1); // all
    assert.equal(n1!.stats.received, 2); // room, all
    assert.equal(n2!.stats.received, 3); // keys, mids, all; not its own room push
    assert.equal(n3!.stats.received, 3); // keys, mids, room
  },
});

Deno.test({
  name: "a room push goes only to the nodes with members; mids dedupe per node",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await Cluster.start(redis, ["n1", "n2", "n3"]);
    const x = await cluster.connect("n2", { mid: 5, key: "x", room_id: "live://only2" });
    const y = await cluster.connect("n2", { mid: 5, key: "y", accepts: [BIZ] });
    const z = await cluster.connect("n3", { mid: 6, key: "z", room_id: "live://else" });
    const result = await cluster.node("n1").cluster.pushRoom("live://only2", BIZ, new Uint8Array());
    // remote counts whoever listens on comet:all besides n1: n2 and this test
    assert.deepEqual(result, { local: 0, remote: 1, degraded: false });
    const mids = await cluster.node("n1").cluster.pushMids([5], BIZ, new TextEncoder().encode("m"));
    assert.deepEqual(mids, { local: 0, remote: 1, degraded: false });
    assert.equal(text((await y.nextOp(BIZ)).body), "m");
    await x.nextOp(BIZ);
    await settle(150);
    assert.deepEqual(business(z), []);
    assert.equal((cluster.node("n3").cluster as RedisCluster).stats.received, 0);
    // Once z has its room change reply, a room push from anywhere finds it.
    z.sendFrame(Op.ChangeRoom, "live://only2");
    await z.nextOp(Op.ChangeRoomReply);
    const after = await cluster.node("n1").cluster.pushRoom("live://only2", BIZ, new Uint8Array());
    assert.deepEqual(after, { local: 0, remote: 2, degraded: false });
    await z.nextOp(BIZ);
  },
});

Deno.test({
  name: "a key that moved to another node stays registered when its old connection closes",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await Cluster.start(redis, ["n1", "n2"]);
    const old = await cluster.connect("n1", { mid: 3, key: "k", accepts: [BIZ] });
    const moved = await cluster.connect("n2", { mid: 3, key: "k", accepts: [BIZ] });
    await old.close();
    assert.ok(await until(() => cluster.node("n1").comet.connections === 0));
    await settle(100);
    await push(cluster.node("n1"), `/goim/push/keys?operation=${BIZ}&keys=k`, "here");
    await push(cluster.node("n1"), `/goim/push/mids?operation=${BIZ}&mids=3`, "me");
    assert.equal(text((await moved.nextOp(BIZ)).body), "here");
    assert.equal(text((await moved.nextOp(BIZ)).body), "me");
  },
});

Deno.test({
  name: "push all shares its speed among the live nodes, as goim's job does",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await Cluster.start(redis, ["n1", "n2"]);
    assert.ok(await until(() => cluster.node("n1").cluster.nodes().length === 2));
    await using sub = await RedisSubscriber.connect(redis.url);
    const heard = Promise.withResolvers<Uint8Array>();
    await sub.subscribe("comet:all", (payload) => heard.resolve(payload.slice()));
    const c = await cluster.connect("n2", { key: "c", accepts: [BIZ] });
    const result = await cluster.node("n1").cluster.pushAll(BIZ, new TextEncoder().encode("p"), {
      speed: 1000,
    });
    // remote counts whoever listens on comet:all besides n1: n2 and this test
    assert.deepEqual(result, { local: 0, remote: 2, degraded: false });
    const envelope = decodeEnvelope(await heard.promise);
    assert.equal(envelope.kind, "all");
    assert.equal(envelope.kind === "all" && envelope.speed, 500);
    assert.equal(text((await c.nextOp(BIZ)).body), "p");
  },
});

// --- counts and nodes ------------------------------------------------------------

Deno.test({
  name: "online counts merge across nodes: heartbeat replies and the API",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await Cluster.start(redis, ["n1", "n2", "n3"]);
    const room = "live://1000";
    const first = await cluster.connect("n1", { mid: 1, room_id: room });
    await cluster.connect("n2", { mid: 2, room_id: room });
    await cluster.connect("n3", { mid: 3, room_id: room });
    await cluster.connect("n3", { mid: 4, room_id: "live://2000" });
    await cluster.connect("n3", { mid: 5, room_id: "chat://1" });

    const deadline = Date.now() + 3000;
    while ((await heartbeatOnline(first)) !== 3) {
      assert.ok(Date.now() < deadline, "heartbeat reply never showed 3 members");
      await settle(50);
    }
    for (const node of cluster.nodes) {
      // Each node refreshes its view every report interval, on its own.
      const c = node.cluster;
      assert.ok(
        await until(() =>
          c.roomOnline(room) === 3 && c.roomOnline("live://2000") === 1 &&
          c.onlineTotal().connCount === 5
        ),
        c.nodeId,
      );
      const rooms = await api(node, "/goim/online/room?type=live&rooms=1000&rooms=2000&rooms=9");
      assert.deepEqual(rooms.body.data, { 1000: 3, 2000: 1, 9: 0 });
      const top = await api(node, "/goim/online/top?type=live&limit=5");
      assert.deepEqual(top.body.data, [{ room_id: "1000", count: 3 }, {
        room_id: "2000",
        count: 1,
      }]);
      const total = await api(node, "/goim/online/total");
      // ip_count is summed per node, as goim's: one client IP on three nodes counts three.
      assert.deepEqual(total.body.data, { ip_count: 3, conn_count: 5 });
    }
  },
});

Deno.test({
  name: "nodes/instances and nodes/weighted list the live nodes; a node that leaves drops out",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await Cluster.start(redis, ["n1", "n2", "n3"], {}, {
      domain: "127.0.0.1",
    });
    await cluster.connect("n2", { mid: 1, key: "on-n2" });
    const listed = async (id: string) => {
      const res = await api(cluster.node(id), "/goim/nodes/instances");
      return res.body.data as { id: string; tcp_port: number; connections: number }[];
    };
    assert.ok(
      await until(() => {
        const nodes = cluster.node("n1").cluster.nodes();
        return nodes.length === 3 && nodes.find((n) => n.id === "n2")?.connections === 1;
      }),
      "n1 never saw three nodes, n2 with its connection",
    );
    const instances = await listed("n1");
    assert.deepEqual(instances.map((n) => n.id), ["n1", "n2", "n3"]);
    for (const n of instances) {
      const node = cluster.node(n.id);
      assert.deepEqual(n, {
        id: n.id,
        advertise: "127.0.0.1",
        tcp_port: node.addrs.tcp!.port,
        ws_port: node.addrs.ws!.port,
        wss_port: 0,
        connections: n.id === "n2" ? 1 : 0,
        ip_count: n.id === "n2" ? 1 : 0,
        updated: (n as unknown as { updated: number }).updated,
        version: VERSION,
      });
    }
    const weighted = await api(cluster.node("n1"), "/goim/nodes/weighted?platform=android");
    const addrs = (weighted.body.data as { nodes: string[] }).nodes;
    assert.equal(addrs.length, 3);
    // least loaded first: n2 holds the only connection
    assert.equal(addrs[2], `127.0.0.1:${cluster.node("n2").addrs.tcp!.port}`);

    const health = await api(cluster.node("n1"), "/healthz");
    assert.deepEqual(health.body.data, {
      status: "ok",
      connections: 0,
      node: "n1",
      broker: "ready",
      nodes: 3,
    });

    // A graceful shutdown leaves at once: no waiting for its report to expire.
    const n3 = cluster.node("n3");
    cluster.nodes = cluster.nodes.filter((n) => n !== n3);
    await n3.shutdown();
    assert.ok(await until(() => cluster.node("n1").cluster.nodes().length === 2, 2000));
    await using redisClient = await RedisClient.connect(redis.url);
    assert.deepEqual(
      (await redisClient.command("SMEMBERS", "comet:nodes") as Uint8Array[]).map(text).sort(),
      ["n1", "n2"],
    );
  },
});

// --- sessions ----------------------------------------------------------------

Deno.test({
  name: "heartbeats renew a session's registry entries lazily; closing removes them",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await Cluster.start(redis, ["n1"], { sessionTtl: 600 }, {
      heartbeatTimeout: 300,
    });
    await using redisClient = await RedisClient.connect(redis.url);
    const client = await cluster.connect("n1", { mid: 42, key: "hb" });
    const ttl = async () => Number(await redisClient.command("PTTL", "comet:key:hb"));
    assert.equal(replyText(await redisClient.command("GET", "comet:key:hb")), "n1");
    assert.equal(
      replyText(await redisClient.command("HGET", "comet:mid:42", "hb")),
      "n1",
    );
    // Beat for three TTLs: without renewals the entries would be long gone.
    for (let i = 0; i < 18; i++) {
      await heartbeatOnline(client);
      await settle(100);
    }
    assert.ok((await ttl()) > 0, "the key expired while the connection was alive");
    assert.ok(Number(await redisClient.command("PTTL", "comet:mid:42")) > 0);
    await client.close();
    assert.ok(await until(() => cluster.node("n1").comet.connections === 0));
    await settle(100);
    assert.equal(await redisClient.command("EXISTS", "comet:key:hb", "comet:mid:42"), 0);
  },
});

// --- losing Redis ------------------------------------------------------------

Deno.test({
  name: "Redis restart under traffic: degraded, local pushes continue, then recovery",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using cluster = await Cluster.start(redis, ["n1", "n2"]);
    const c1 = await cluster.connect("n1", { mid: 1, key: "c1", room_id: "live://r" });
    const c2 = await cluster.connect("n2", {
      mid: 2,
      key: "c2",
      room_id: "live://r",
      accepts: [BIZ],
    });
    const [n1, n2] = [cluster.node("n1"), cluster.node("n2")];

    // Traffic all along: room pushes into n1 every few ms; none may fail.
    let stop = false;
    let sent = 0;
    const failures: string[] = [];
    const traffic = (async () => {
      while (!stop) {
        const res = await api(n1, `/goim/push/room?operation=${BIZ}&type=live&room=r`, {
          method: "POST",
          body: `t${sent++}`,
        });
        if (res.status !== 200 || res.body.code !== 0) failures.push(JSON.stringify(res.body));
        await settle(5);
      }
    })();
    try {
      await settle(100);
      await redis.stop();
      for (const node of [n1, n2]) {
        assert.ok(
          await until(() => node.cluster.state === "reconnecting"),
          "node never noticed",
        );
        const health = await api(node, "/healthz");
        assert.equal(health.status, 200);
        const data = health.body.data as { status: string; broker: string };
        assert.equal(data.status, "degraded");
        assert.equal(data.broker, "reconnecting");
      }
      // This node's own connections still get what enters it, and the caller is told.
      const local = await push(n2, `/goim/push/keys?operation=${BIZ}&keys=c2`, "local");
      assert.match(local.message, /^Cluster degraded: delivered to this node's connections only/);
      assert.ok(await until(() => c2.buffered.some((f) => text(f.body) === "local")));

      await redis.start();
      for (const node of [n1, n2]) {
        assert.ok(await until(() => node.cluster.state === "ready", 5000), "node never recovered");
      }
      // The restarted Redis is empty: the nodes re-register what they hold.
      await using redisClient = await RedisClient.connect(redis.url);
      const registered = async () =>
        Number(await redisClient.command("EXISTS", "comet:key:c1", "comet:key:c2")) === 2 &&
        Number(await redisClient.command("SCARD", "comet:room:live://r")) === 2;
      const deadline = Date.now() + 5000;
      while (!(await registered())) {
        assert.ok(Date.now() < deadline, "sessions were not re-registered");
        await settle(20);
      }
    } finally {
      stop = true;
      await traffic;
    }
    assert.deepEqual(failures, []);
    assert.ok(sent > 10, `only ${sent} pushes went out`);
    await settle(150);
    business(c1);
    business(c2);
    // Pushes entering different nodes have no order between them: one at a time.
    await push(n1, `/goim/push/keys?operation=${BIZ}&keys=c2`, "after");
    assert.equal(text((await c2.nextOp(BIZ)).body), "after");
    await push(n2, `/goim/push/room?operation=${BIZ}&type=live&room=r`, "room after");
    assert.equal(text((await c2.nextOp(BIZ)).body), "room after");
    assert.equal(text((await c1.nextOp(BIZ)).body), "room after");
    await settle(150);
    assert.deepEqual(business(c1), []);
    assert.deepEqual(business(c2), []);
    const health = await api(n1, "/healthz");
    assert.equal((health.body.data as { status: string }).status, "ok");
  },
});
