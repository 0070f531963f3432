// The history a Redis cluster gives its hub: answers from Redis what followed a client's
// position, refuses another epoch or what is no longer kept, and never stamps itself.
import assert from "node:assert/strict";
import { RedisConnectionError } from "../src/cluster/redis_client.ts";
import { RedisCluster } from "../src/cluster/redis_cluster.ts";
import { silentLogger } from "../src/log.ts";
import type { HistoryLimits, StreamAnswer } from "../src/server/streams.ts";
import { FakeHub } from "./_fake_hub.ts";
import { until } from "./_helpers.ts";
import { redisAvailable, type RedisServer, startRedis } from "./_redis.ts";

const ignore = !redisAvailable;
const BIZ = 1000;
const ROOM = "live://1";
const STREAM = `room:${ROOM}`;
const address = { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 };
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function node(redis: RedisServer, limits: HistoryLimits) {
  const cluster = await RedisCluster.connect(redis.url, {
    nodeId: "a",
    reconnect: { initialDelay: 20, maxDelay: 200, jitter: 0 },
    logger: silentLogger,
  });
  const history = cluster.history(limits);
  const hub = new FakeHub();
  cluster.attach(hub, address);
  return { cluster, history, hub };
}

function bodies(answer: StreamAnswer): [number, string][] {
  return answer.entries.map((e) => [e.offset, decoder.decode(e.body)]);
}

Deno.test({
  name: "history answers what followed an offset, and where a stream stands without one",
  ignore,
  async fn() {
    await using redis = await startRedis();
    const { cluster, history, hub } = await node(redis, { size: 100, ttl: 60_000 });
    await using _ = cluster;
    assert.equal(history.append(STREAM, BIZ, encoder.encode("x")), undefined);
    for (let i = 1; i <= 5; i++) await cluster.pushRoom(ROOM, BIZ, encoder.encode(`m${i}`));
    // Nobody is in the room here: Redis kept them all the same.
    assert.equal(hub.pushes.length, 0);
    const [top] = await history.answer([{ stream: STREAM }]);
    assert.equal(top!.offset, 5);
    assert.equal(top!.recovered, undefined);
    const epoch = top!.epoch;
    const [after] = await history.answer([{ stream: STREAM, from: { epoch, offset: 2 } }]);
    assert.deepEqual({ ...after, entries: bodies(after!) }, {
      stream: STREAM,
      epoch,
      offset: 5,
      recovered: true,
      entries: [[3, "m3"], [4, "m4"], [5, "m5"]],
    });
    assert.ok(after!.entries.every((e) => e.op === BIZ));
    const [atTop] = await history.answer([{ stream: STREAM, from: { epoch, offset: 5 } }]);
    assert.deepEqual([atTop!.recovered, atTop!.entries.length], [true, 0]);
  },
});

Deno.test({
  name: "history refuses another epoch, an offset past the top, and what is no longer kept",
  ignore,
  async fn() {
    await using redis = await startRedis();
    const { cluster, history } = await node(redis, { size: 3, ttl: 60_000 });
    await using _ = cluster;
    for (let i = 1; i <= 5; i++) await cluster.pushRoom(ROOM, BIZ, encoder.encode(`m${i}`));
    const [{ epoch }] = (await history.answer([{ stream: STREAM }])) as [StreamAnswer];
    const answers = await history.answer([
      { stream: STREAM, from: { epoch: epoch === 1 ? 2 : 1, offset: 4 } },
      { stream: STREAM, from: { epoch: 0, offset: 0 } },
      { stream: STREAM, from: { epoch, offset: 6 } },
      { stream: STREAM, from: { epoch, offset: 1 } },
      { stream: STREAM, from: { epoch, offset: 2 } },
    ]);
    assert.deepEqual(answers.map((a) => [a.recovered, a.reason, a.offset, a.entries.length]), [
      [false, "epoch", 5, 0],
      [false, "epoch", 5, 0],
      [false, "epoch", 5, 0],
      [false, "window", 5, 0], // offset 2 was trimmed: only the last 3 are kept
      [true, undefined, 5, 3],
    ]);
  },
});

Deno.test({
  name: "history refuses pushes older than its ttl as out of the window",
  ignore,
  async fn() {
    await using redis = await startRedis();
    const { cluster, history } = await node(redis, { size: 100, ttl: 200 });
    await using _ = cluster;
    await cluster.pushRoom(ROOM, BIZ, encoder.encode("old"));
    const [{ epoch }] = (await history.answer([{ stream: STREAM }])) as [StreamAnswer];
    const from = { epoch, offset: 0 };
    const [fresh] = await history.answer([{ stream: STREAM, from }]);
    assert.equal(fresh!.recovered, true);
    let late: StreamAnswer | undefined;
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      [late] = await history.answer([{ stream: STREAM, from }]);
      if (late!.recovered === false) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual([late!.reason, late!.epoch, late!.offset], ["window", epoch, 1]);
  },
});

Deno.test({
  name: "history gives a stream never pushed to an epoch that lasts, at offset 0",
  ignore,
  async fn() {
    await using redis = await startRedis();
    const { cluster, history, hub } = await node(redis, { size: 10, ttl: 60_000 });
    await using _ = cluster;
    const [first] = await history.answer([{ stream: "mid:9", from: { epoch: 0, offset: 0 } }]);
    assert.ok(first!.epoch > 0 && first!.epoch <= 0xffffffff);
    assert.deepEqual([first!.offset, first!.recovered, first!.reason], [0, false, "epoch"]);
    // The client took that epoch; the first push to the user follows it.
    await hub.user(9);
    await cluster.pushMids([9], BIZ, encoder.encode("hello"));
    const from = { epoch: first!.epoch, offset: 0 };
    const [next] = await history.answer([{ stream: "mid:9", from }]);
    assert.deepEqual([next!.epoch, next!.recovered, bodies(next!)], [
      first!.epoch,
      true,
      [[1, "hello"]],
    ]);
    assert.deepEqual(hub.seen("mid:9").map((s) => [s.epoch, s.offset]), [[first!.epoch, 1]]);
  },
});

Deno.test({
  name: "history rejects at once while Redis is away, and a restart without data is a new epoch",
  ignore,
  async fn() {
    await using redis = await startRedis();
    const { cluster, history } = await node(redis, { size: 10, ttl: 60_000 });
    await using _ = cluster;
    await cluster.pushRoom(ROOM, BIZ, encoder.encode("m1"));
    const [{ epoch }] = (await history.answer([{ stream: STREAM }])) as [StreamAnswer];
    await redis.stop();
    assert.ok(await until(() => cluster.state === "reconnecting"));
    await assert.rejects(
      async () => await history.answer([{ stream: STREAM }]),
      RedisConnectionError,
    );
    await redis.start();
    assert.ok(await until(() => cluster.state === "ready", 10_000));
    const [after] = await history.answer([{ stream: STREAM, from: { epoch, offset: 1 } }]);
    assert.notEqual(after!.epoch, epoch);
    assert.deepEqual([after!.offset, after!.recovered, after!.reason], [0, false, "epoch"]);
  },
});
