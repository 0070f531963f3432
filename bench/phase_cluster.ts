// The cluster phase: room fan-out through Redis, one Comet node with --redis
// and then three on the same Redis with the members spread evenly, pushes
// entering node 1.
import { redisCommand, sleep } from "./_common.ts";
import { type BenchRedis, startRedis } from "./_redis.ts";
import { roomPushRun } from "./fan_runs.ts";
import type { Harness } from "./harness.ts";
import { cpuNote, ourPids } from "./machine_cpu.ts";
import type { ClusterResults, ClusterRun } from "./records.ts";
import { log } from "./run_log.ts";
import { type CometProc, spawnComet } from "./servers.ts";
import { CONCURRENCY } from "./settings.ts";

/** GET /goim/online/room for live://bench on `api`: the cluster-wide member count, or -1. */
async function _roomOnline(api: number): Promise<number> {
  try {
    const r = await fetch(`http://127.0.0.1:${api}/goim/online/room?type=live&rooms=bench`, {
      signal: AbortSignal.timeout(2_000),
    });
    const j = await r.json() as { data?: { bench?: unknown } } | null;
    return typeof j?.data?.bench === "number" ? j.data.bench : -1;
  } catch {
    return -1;
  }
}

/**
 * Waits (at most `limitMs`) until node 1's API counts `want` members of
 * live://bench cluster-wide and Redis lists `nodes` nodes for the room.
 */
async function _waitRoomReady(
  api: number,
  redis: BenchRedis,
  want: number,
  nodes: number,
  limitMs = 15_000,
): Promise<{ online: number; roomNodes: number; waitedMs: number }> {
  const start = performance.now();
  let online = -1, roomNodes = -1;
  while (performance.now() - start < limitMs) {
    online = await _roomOnline(api);
    const card = await redisCommand(redis.port, "SCARD", "comet:room:live://bench").catch(() => "");
    roomNodes = /^:(\d+)/.test(card) ? Number(card.slice(1, card.indexOf("\r"))) : -1;
    if (online >= want && roomNodes >= nodes) break;
    await sleep(100);
  }
  return { online, roomNodes, waitedMs: performance.now() - start };
}

/** Room pushes into node 1's API as fast as it answers; deliveries counted on every node. */
async function _clusterFanRun(
  h: Harness,
  nodes: CometProc[],
  redis: BenchRedis,
  perNode: number[],
  ms: number,
): Promise<ClusterRun> {
  // The nodes, then Redis.
  const pids = [...nodes.map((n) => n.child.pid), redis.pid];
  const { run, cpu } = await roomPushRun(h, nodes[0]!.api, pids, ms);
  const nodeCpu = cpu.slice(0, nodes.length);
  return {
    nodes: nodes.length,
    perNode,
    ...run,
    nodeCpu,
    serverCpu: nodeCpu.reduce((a, b) => a + b, 0),
    redisCpu: cpu[nodes.length]!,
  };
}

/** Starts `count` Comet nodes on one Redis, opens the members over them, measures one run. */
async function _clusterRun(h: Harness, redis: BenchRedis, count: number): Promise<ClusterRun> {
  const { gen, guard, settings: s } = h;
  guard.checkDeadline(`cluster fan-out, ${count} node(s)`);
  // A clean registry: nothing left from the previous configuration.
  await redisCommand(redis.port, "FLUSHALL");
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const nodes: CometProc[] = [];
  const started = await Promise.allSettled(
    ids.map((id) =>
      spawnComet(h, `cluster-${count}x-${id}`, false, [
        "--redis",
        redis.url,
        "--node-id",
        id,
        "--advertise",
        "127.0.0.1",
        "--report-interval",
        "1s",
      ])
    ),
  );
  for (const s of started) if (s.status === "fulfilled") nodes.push(s.value);
  try {
    const failed = started.find((s) => s.status === "rejected") as
      | PromiseRejectedResult
      | undefined;
    if (failed) throw failed.reason;
    // Members spread evenly: node i gets M/count (the first ones take the remainder).
    const perNode = ids.map((_, i) =>
      Math.floor(s.clusterMembers / count) + (i < s.clusterMembers % count ? 1 : 0)
    );
    let keyStart = 0;
    for (let i = 0; i < count; i++) {
      const r = await gen.open({
        kind: "tcp",
        port: nodes[i]!.tcp,
        count: perNode[i]!,
        keyPrefix: `c${count}x`,
        keyStart,
        concurrency: CONCURRENCY,
        bufSize: s.clientBuf,
      }, 90_000);
      keyStart += perNode[i]!;
      if (r.failed > 0) {
        log(`  ${r.failed} connections to n${i + 1} failed: ${r.errors.join("; ")}`);
      }
    }
    const live = (await gen.stats()).live;
    const ready = await _waitRoomReady(nodes[0]!.api, redis, live, count);
    log(
      `  ${count} node(s), ${live} members (${perNode.join(" + ")}); node 1 counts ` +
        `${ready.online} online, Redis lists ${ready.roomNodes} node(s) for the room ` +
        `(after ${(ready.waitedMs / 1000).toFixed(1)} s)`,
    );
    if (ready.online < live || ready.roomNodes < count) {
      throw new Error(
        `Cluster room not populated: ${ready.online}/${live} online, ` +
          `${ready.roomNodes}/${count} nodes`,
      );
    }
    const r = await guard.measured(
      `cluster fan-out, ${count} node(s)`,
      () => _clusterFanRun(h, nodes, redis, perNode, s.clusterMs),
    );
    log(
      `  ${count} node(s): ${r.deliveriesPerSec.toFixed(0)} deliveries/s, ` +
        `${r.pushesPerSec.toFixed(1)} pushes/s, lost ${r.lost}, ` +
        `p50 ${r.latency.p50} p99 ${r.latency.p99} ms, ` +
        (r.slowClosed ? `${r.slowClosed} members closed as slow consumers, ` : "") +
        `node cpu ${r.nodeCpu.map((x) => x.toFixed(2)).join("+")}, redis cpu ` +
        `${r.redisCpu.toFixed(2)}, pusher cpu ${r.pusherCpu.toFixed(2)}, ${cpuNote(r)}`,
    );
    return r;
  } finally {
    await gen.closeAll().catch(() => {});
    await Promise.all(nodes.map((n) => n.child.stop("SIGTERM")));
  }
}

/**
 * Room fan-out through Redis: one node with --redis, then three nodes on the
 * same Redis with the members spread evenly, pushes entering node 1. All the
 * processes share this machine's cores, so this measures the cost of the
 * Redis hop (publish, a second encode per node), not scale-out.
 */
export async function clusterPhase(h: Harness): Promise<void> {
  const s = h.settings;
  log(
    `comet cluster: room fan-out to ${s.clusterMembers} TCP members, 1 node then 3 nodes ` +
      `on one Redis, pushes into node 1 for ${s.clusterMs} ms`,
  );
  const redis = await startRedis(10_000, h.settings.serverCpus);
  ourPids.add(redis.pid);
  const cluster: ClusterResults = { members: s.clusterMembers, durationMs: s.clusterMs };
  h.results.comet.cluster = cluster;
  try {
    cluster.one = await _clusterRun(h, redis, 1);
    cluster.three = await _clusterRun(h, redis, 3);
  } catch (err) {
    cluster.error = String((err as Error).message ?? err).slice(0, 2000);
    throw err;
  } finally {
    await redis.stop();
    // Its start-up banner and shutdown lines are noise; anything else is worth seeing.
    const said = redis.log.split("\n").filter((l) =>
      l.trim() !== "" &&
      !/oO0Oo|version=|Configuration loaded|Server initialized|overcommit|SIGTERM|shutdown|exit, bye/
        .test(l)
    );
    if (said.length) log(`  redis-server said:\n${said.slice(-10).join("\n")}`);
  }
}
