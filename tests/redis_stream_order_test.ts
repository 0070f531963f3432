// Streams through a real redis-server: every node delivers each stream in the one order the
// Redis script gave, and fills from Redis what its pub/sub connection missed. The hubs are
// fakes that record the stamped pushes they are handed.
import assert from "node:assert/strict";
import { BrokerInbox } from "../src/cluster/broker_inbox.ts";
import type { ClusterHub } from "../src/cluster/cluster.ts";
import { RedisClient } from "../src/cluster/redis_client.ts";
import { RedisCluster, type RedisClusterOptions } from "../src/cluster/redis_cluster.ts";
import type { RedisHistory } from "../src/cluster/redis_history.ts";
import type { RedisLink } from "../src/cluster/redis_link.ts";
import { StreamOrder } from "../src/cluster/redis_stream_order.ts";
import { silentLogger } from "../src/log.ts";
import type { Push } from "../src/server/push.ts";
import { FakeHub, type Seen } from "./_fake_hub.ts";
import { until } from "./_helpers.ts";
import { redisAvailable, type RedisServer, startRedis } from "./_redis.ts";

const ignore = !redisAvailable;
const BIZ = 1000;
const ROOM = "live://1";
const address = { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 };
const encoder = new TextEncoder();

/** Nodes with streams on, each serving a fake hub; disposing closes them. */
class Nodes implements AsyncDisposable {
  clusters: RedisCluster[] = [];
  hubs: FakeHub[] = [];

  static async start(
    redis: RedisServer,
    ids: string[],
    options: RedisClusterOptions = {},
  ): Promise<Nodes> {
    const nodes = new Nodes();
    for (const nodeId of ids) {
      const cluster = await RedisCluster.connect(redis.url, {
        nodeId,
        reportInterval: 100,
        reconnect: { initialDelay: 20, maxDelay: 200, jitter: 0 },
        logger: silentLogger,
        ...options,
      });
      nodes.clusters.push(cluster);
      cluster.history({ size: 5_000, ttl: 60_000 });
      const hub = new FakeHub();
      cluster.attach(hub, address);
      nodes.hubs.push(hub);
    }
    return nodes;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.clusters.map((c) => c.close()));
  }
}

/** Whether `seen` is offsets 1..n of one epoch, in order. */
function consecutive(seen: Seen[], n: number): boolean {
  return seen.length === n &&
    seen.every((s, i) => s.offset === i + 1 && s.epoch === seen[0]!.epoch);
}

Deno.test({
  name: "two nodes pushing into one room at once deliver the same order, offsets 1 to 2000",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using nodes = await Nodes.start(redis, ["a", "b"]);
    const [a, b] = nodes.clusters as [RedisCluster, RedisCluster];
    for (const hub of nodes.hubs) await hub.join(ROOM);
    const sends = [];
    for (let i = 0; i < 1000; i++) {
      sends.push(a.pushRoom(ROOM, BIZ, encoder.encode(`a${i}`)));
      sends.push(b.pushRoom(ROOM, BIZ, encoder.encode(`b${i}`)));
    }
    const results = await Promise.all(sends);
    // Each push came back to its sender (one member here) and reached the other node.
    assert.ok(results.every((r) => r.local === 1 && r.remote === 1 && !r.degraded));
    const [ha, hb] = nodes.hubs as [FakeHub, FakeHub];
    assert.ok(await until(() => ha.seen(`room:${ROOM}`).length >= 2000, 20_000));
    assert.ok(await until(() => hb.seen(`room:${ROOM}`).length >= 2000, 20_000));
    const seenA = ha.seen(`room:${ROOM}`);
    const seenB = hb.seen(`room:${ROOM}`);
    assert.ok(consecutive(seenA, 2000), JSON.stringify(seenA.slice(0, 5)));
    assert.deepEqual(seenB, seenA);
    // Every push of both senders is there, once.
    assert.equal(new Set(seenA.map((s) => s.body)).size, 2000);
    assert.equal(a.gapsFilled + b.gapsFilled, 0);
  },
});

Deno.test({
  name: "a node that missed pushes fetches them from Redis before the next one, in order",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using raw = await RedisClient.connect(redis.url);
    // Reports once a second, not every 100 ms: a node late with three under load is given up
    // for dead and re-added, and re-adding writes its rooms again, undoing the SREM below.
    await using nodes = await Nodes.start(redis, ["a", "b"], { reportInterval: 1_000 });
    const [a, b] = nodes.clusters as [RedisCluster, RedisCluster];
    const [ha, hb] = nodes.hubs as [FakeHub, FakeHub];
    for (const hub of nodes.hubs) await hub.join(ROOM);
    // Both listed, both catch-ups (which write each node's rooms) done.
    assert.ok(await until(() => a.nodes().length === 2 && b.nodes().length === 2, 5_000));
    for (let i = 1; i <= 3; i++) await a.pushRoom(ROOM, BIZ, encoder.encode(`m${i}`));
    assert.ok(await until(() => hb.seen(`room:${ROOM}`).length === 3));
    // Node b drops out of the room's set: Redis publishes the next three to a alone.
    await raw.command("SREM", `comet:room:${ROOM}`, "b");
    for (let i = 4; i <= 6; i++) await a.pushRoom(ROOM, BIZ, encoder.encode(`m${i}`));
    await raw.command("SADD", `comet:room:${ROOM}`, "b");
    await a.pushRoom(ROOM, BIZ, encoder.encode("m7"));
    assert.ok(await until(() => hb.seen(`room:${ROOM}`).length === 7));
    const seen = hb.seen(`room:${ROOM}`);
    assert.ok(consecutive(seen, 7));
    assert.deepEqual(seen.map((s) => s.body), ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]);
    assert.deepEqual(ha.seen(`room:${ROOM}`), seen);
    assert.equal(b.gapsFilled, 3);
    assert.equal(a.gapsFilled, 0);
  },
});

Deno.test({
  name: "after its pub/sub connection is cut, a node fills what was published meanwhile",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using raw = await RedisClient.connect(redis.url);
    // A slow reconnect, so that the pushes below are surely published while both are away.
    await using nodes = await Nodes.start(redis, ["a", "b"], {
      reconnect: { initialDelay: 1_000, maxDelay: 1_000, jitter: 0 },
    });
    const [a, b] = nodes.clusters as [RedisCluster, RedisCluster];
    const [ha, hb] = nodes.hubs as [FakeHub, FakeHub];
    for (const hub of nodes.hubs) await hub.join(ROOM);
    await hb.user(7);
    await a.pushRoom(ROOM, BIZ, encoder.encode("before"));
    await a.pushMids([7], BIZ, encoder.encode("u-before"));
    assert.ok(await until(() => hb.seen(`room:${ROOM}`).length === 1));
    assert.ok(await until(() => hb.seen("mid:7").length === 1));
    await raw.command("CLIENT", "KILL", "TYPE", "pubsub");
    const away = [];
    for (let i = 0; i < 5; i++) away.push(await a.pushRoom(ROOM, BIZ, encoder.encode(`away${i}`)));
    await a.pushMids([7], BIZ, encoder.encode("u-away"));
    // Its own subscriber was away too: nothing reached a's member yet.
    assert.ok(away.every((r) => r.local === 0 && r.remote === 0));
    assert.ok(await until(() => hb.seen(`room:${ROOM}`).length === 6, 10_000));
    assert.ok(await until(() => ha.seen(`room:${ROOM}`).length === 6, 10_000));
    assert.ok(await until(() => hb.seen("mid:7").length === 2, 10_000));
    assert.ok(consecutive(hb.seen(`room:${ROOM}`), 6));
    assert.deepEqual(ha.seen(`room:${ROOM}`), hb.seen(`room:${ROOM}`));
    assert.deepEqual(hb.seen("mid:7").map((s) => [s.offset, s.body]), [
      [1, "u-before"],
      [2, "u-away"],
    ]);
    assert.equal(b.gapsFilled, 6);
    assert.equal(a.gapsFilled, 5);
    // Live again, without another fill.
    await b.pushRoom(ROOM, BIZ, encoder.encode("back"));
    assert.ok(await until(() => ha.seen(`room:${ROOM}`).length === 7));
    assert.ok(consecutive(ha.seen(`room:${ROOM}`), 7));
    assert.equal(a.gapsFilled, 5);
  },
});

Deno.test({
  name: "pushes to users and to everyone are ordered per stream on every node holding readers",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using nodes = await Nodes.start(redis, ["a", "b"]);
    const [a, b] = nodes.clusters as [RedisCluster, RedisCluster];
    const [ha, hb] = nodes.hubs as [FakeHub, FakeHub];
    await ha.user(7);
    await hb.user(7);
    await hb.user(8);
    const sends = [];
    for (let i = 0; i < 50; i++) {
      sends.push(a.pushMids([7, 8, 7], BIZ, encoder.encode(`a${i}`)));
      sends.push(b.pushMids([8, 7], BIZ, encoder.encode(`b${i}`)));
      sends.push(a.pushAll(BIZ, encoder.encode(`all-a${i}`)));
      sends.push(b.pushAll(BIZ, encoder.encode(`all-b${i}`)));
    }
    await Promise.all(sends);
    assert.ok(await until(() => hb.seen("mid:8").length === 100 && hb.seen("all").length === 100));
    assert.ok(await until(() => ha.seen("mid:7").length === 100 && ha.seen("all").length === 100));
    assert.ok(await until(() => hb.seen("mid:7").length === 100));
    assert.ok(consecutive(ha.seen("mid:7"), 100));
    assert.ok(consecutive(hb.seen("mid:8"), 100));
    assert.deepEqual(hb.seen("mid:7"), ha.seen("mid:7"));
    assert.ok(consecutive(ha.seen("all"), 100));
    assert.deepEqual(hb.seen("all"), ha.seen("all"));
    // Node a holds no device of user 8: its pushes carry only user 7.
    assert.equal(ha.seen("mid:8").length, 0);
    assert.equal(a.gapsFilled + b.gapsFilled, 0);
  },
});

Deno.test({
  name: "Redis restarted without its data starts the stream again under a new epoch, no fill",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using nodes = await Nodes.start(redis, ["a"]);
    const [a] = nodes.clusters as [RedisCluster];
    const [ha] = nodes.hubs as [FakeHub];
    await ha.join(ROOM);
    for (let i = 1; i <= 3; i++) await a.pushRoom(ROOM, BIZ, encoder.encode(`old${i}`));
    assert.ok(await until(() => ha.seen(`room:${ROOM}`).length === 3));
    await redis.restart();
    assert.ok(await until(() => a.state === "ready", 10_000));
    // The room set is written anew by the catch-up after the reconnect.
    await using raw = await RedisClient.connect(redis.url);
    for (let i = 0; i < 500; i++) {
      if (await raw.command("SISMEMBER", `comet:room:${ROOM}`, "a") === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (let i = 1; i <= 2; i++) await a.pushRoom(ROOM, BIZ, encoder.encode(`new${i}`));
    assert.ok(await until(() => ha.seen(`room:${ROOM}`).length === 5, 10_000));
    const seen = ha.seen(`room:${ROOM}`);
    assert.deepEqual(seen.map((s) => [s.offset, s.body]), [
      [1, "old1"],
      [2, "old2"],
      [3, "old3"],
      [1, "new1"],
      [2, "new2"],
    ]);
    assert.notEqual(seen[3]!.epoch, seen[0]!.epoch);
    assert.equal(a.gapsFilled, 0);
  },
});

Deno.test("a push the hub refuses for a bad op during a gap's fill is dropped, and the stream goes on", async () => {
  // A node of another version may publish an op this hub reserves: its hub throws RangeError.
  const seen: number[] = [];
  const hub = {
    closing: false,
    rooms: new Map([[ROOM, 1]]),
    openSessions: () => [],
    deliver(push: Push): number {
      if (push.op < 100) throw new RangeError(`Operation is reserved: ${push.op}`);
      seen.push((push as { stamp: { offset: number } }).stamp.offset);
      return 1;
    },
  } as unknown as ClusterHub;
  const inbox = new BrokerInbox({ logger: silentLogger } as unknown as RedisLink);
  inbox.hub = hub;
  const body = new Uint8Array();
  const kept = [{ offset: 2, op: 18, body, at: 0 }];
  const history = {
    read: () => Promise.resolve([{ epoch: 9, top: 3, entries: kept }]),
  } as unknown as RedisHistory;
  const order = new StreamOrder({ hub, history, deliver: inbox.deliver, logger: silentLogger });
  const at = (offset: number): Push => ({
    kind: "room",
    op: BIZ,
    room: ROOM,
    body,
    stamp: { epoch: 9, offset },
  });
  order.offer(at(1));
  // Offset 2 never came: the fill reads it (the bad op), then releases 3.
  order.offer(at(3));
  await order.close();
  order.offer(at(4));
  assert.deepEqual(seen, [1, 3, 4]);
});
