// The recovery soak (issue 20): opted-in clients cut at random and resuming
// while pushes to rooms and users go on; at the end, every client's every
// stream is compared with what was published.
//
//   deno run -A --unstable-net bench/recovery_soak.ts [--clients 1000] [--rate 200]
//     [--duration 60] [--cut-min 1] [--cut-max 30] [--rooms 20] [--nodes 1] [--workers 1]
//     [--history-size 1000] [--history-ttl 120] [--kill-node] [--restart-redis]
//     [--expect-refusals]
//
// With --workers N, each node runs N workers on its ports (the kernel spreads the
// connections over them), so a resuming client usually lands on another worker.
// With --nodes above 1, the nodes share a redis-server that keeps its data
// (append-only file), and a client resumes on the next node. --kill-node
// kills the last node with SIGKILL at 30 % of the run and starts it again;
// --restart-redis restarts Redis at about half way.
//
// One line of JSON on stdout with the counts; exit status 1 when anything was
// lost, duplicated or out of order, or a stream was not recovered. With
// --expect-refusals (cuts longer than --history-ttl), status 1 unless
// recoveries were refused for the window and no busy room was replayed in
// part.
import { parseArgs } from "node:util";
import { type BenchRedis, startRedis } from "./_redis.ts";
import { planNodes, push, sleep, startNode, stopNodes } from "./stream_nodes.ts";
import { type ClientTally, emptyTally, StreamClient } from "./recovery_client.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    clients: { type: "string", default: "1000" },
    rate: { type: "string", default: "200" },
    duration: { type: "string", default: "60" },
    "cut-min": { type: "string", default: "1" },
    "cut-max": { type: "string", default: "30" },
    rooms: { type: "string", default: "20" },
    nodes: { type: "string", default: "1" },
    workers: { type: "string", default: "1" },
    "history-size": { type: "string", default: "1000" },
    "history-ttl": { type: "string", default: "120" },
    "kill-node": { type: "boolean", default: false },
    "restart-redis": { type: "boolean", default: false },
    "expect-refusals": { type: "boolean", default: false },
  },
});
const clients = Number(a.clients);
const rate = Number(a.rate);
const duration = Number(a.duration) * 1000;
const cutMin = Number(a["cut-min"]) * 1000;
const cutMax = Number(a["cut-max"]) * 1000;
const rooms = Number(a.rooms);
const nodeCount = Number(a.nodes);

let redis: BenchRedis | undefined;
const redisDir = nodeCount > 1 ? await Deno.makeTempDir({ prefix: "comet-soak-redis-" }) : "";
if (nodeCount > 1) redis = await startRedis(10_000, "", redisDir);

const nodes = planNodes(nodeCount, [
  ...["--workers", String(a.workers)],
  ...["--history-size", String(a["history-size"]), "--history-ttl", String(a["history-ttl"])],
], redis?.url);
await Promise.all(nodes.map(startNode));

const checkBodies = nodeCount === 1;
const all: StreamClient[] = [];
const home: number[] = [];
for (let i = 0; i < clients; i++) {
  all.push(
    new StreamClient({ mid: i + 1, key: `k${i}`, room: `live://${i % rooms}`, checkBodies }),
  );
  home.push(i % nodeCount);
}
// Connected a few at a time: the point is recovery, not a connect storm.
for (let i = 0; i < all.length; i += 50) {
  await Promise.all(all.slice(i, i + 50).map((c, j) => c.connect(nodes[home[i + j]!]!.tcp)));
}

const published = new Map<string, number>();
let refusedPushes = 0;
// Taken by one node alone while Redis was away: the API says so, and they belong to no stream.
let degradedPushes = 0;
let running = true;

async function _publisher(): Promise<void> {
  let n = 0;
  const start = performance.now();
  while (running) {
    const due = start + (n * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const node = nodes[n % nodes.length]!;
    const toRoom = n % 2 === 0;
    const target = toRoom
      ? Math.floor(Math.random() * rooms)
      : Math.floor(Math.random() * clients) + 1;
    const stream = toRoom ? `room:live://${target}` : `mid:${target}`;
    const next = (published.get(stream) ?? 0) + 1;
    const path = toRoom
      ? `/goim/push/room?operation=1000&type=live&room=${target}`
      : `/goim/push/mids?operation=1000&mids=${target}`;
    n++;
    const outcome = await push(node, path, `${stream}#${next}`);
    if (outcome === "ok") published.set(stream, next);
    else if (outcome === "degraded") degradedPushes++;
    else refusedPushes++;
  }
}

async function _cutter(c: StreamClient, index: number): Promise<void> {
  const at = Math.random() * Math.max(0, duration - cutMax - 1000);
  await sleep(at);
  const away = cutMin + Math.random() * (cutMax - cutMin);
  await c.cut();
  await sleep(away);
  // Resumes on another node where there is one.
  home[index] = (home[index]! + 1) % nodes.length;
  await _reconnect(c, index);
}

async function _reconnect(c: StreamClient, index: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      await c.connect(nodes[home[index]!]!.tcp);
      return;
    } catch {
      home[index] = (home[index]! + 1) % nodes.length;
      await sleep(200);
    }
  }
  throw new Error(`Client ${index} could not reconnect`);
}

const events: string[] = [];
const _at = () => ((performance.now() - started) / 1000).toFixed(1);
async function _chaos(): Promise<void> {
  if (a["kill-node"] && nodes.length > 1) {
    await sleep(duration * 0.3);
    const victim = nodes[nodes.length - 1]!;
    victim.proc!.kill("SIGKILL");
    await victim.proc!.status;
    events.push(`killed node ${nodes.length - 1} at ${_at()} s`);
    // Its clients are cut by the kill: they resume elsewhere.
    const orphans = all.map((c, i) => [c, i] as const).filter(([, i]) =>
      home[i] === nodes.length - 1
    );
    for (const [, i] of orphans) home[i] = 0;
    await Promise.all(orphans.map(async ([c, i]) => {
      await c.cut();
      await _reconnect(c, i);
    }));
    await sleep(3000);
    await startNode(victim);
    events.push(`restarted it at ${_at()} s`);
  }
  if (a["restart-redis"] && redis !== undefined) {
    await sleep(duration * 0.2);
    await redis.restart();
    events.push(`restarted Redis at ${_at()} s`);
  }
}

const started = performance.now();
const pub = _publisher();
const chaos = _chaos();
await Promise.all(all.map((c, i) => _cutter(c, i)));
const left = duration - (performance.now() - started);
if (left > 0) await sleep(left);
running = false;
await pub;
await chaos;
// Let the last pushes land everywhere.
await sleep(2000);

let lostTail = 0;
const sum: ClientTally = emptyTally();
for (const c of all) {
  const t = c.tally;
  for (
    const k of [
      "received",
      "plain",
      "duplicates",
      "gaps",
      "epochBreaks",
      "misplaced",
      "recovered",
    ] as const
  ) {
    sum[k] += t[k];
  }
  sum.skippedByRefusal += t.skippedByRefusal;
  for (const k of ["room", "mid", "all"] as const) sum.replays[k] += t.replays[k];
  sum.connects += t.connects;
  sum.failedConnects += t.failedConnects;
  for (const [r, n] of Object.entries(t.refused)) sum.refused[r] = (sum.refused[r] ?? 0) + n;
  for (
    const [slot, stream] of [["room", `room:${c.options.room}`], [
      "mid",
      `mid:${c.options.mid}`,
    ]] as const
  ) {
    const p = c.positions.get(slot);
    const want = published.get(stream) ?? 0;
    if (p === undefined) continue;
    if (p.offset < want) lostTail += want - p.offset;
  }
}
await Promise.all(all.map((c) => c.cut()));
await stopNodes(nodes);
await redis?.stop();
if (redisDir) await Deno.remove(redisDir, { recursive: true }).catch(() => {});

const lost = sum.gaps + sum.skippedByRefusal + lostTail;
const refusals = Object.values(sum.refused).reduce((x, y) => x + y, 0);
const result = {
  clients,
  rate,
  seconds: duration / 1000,
  nodes: nodeCount,
  workers: Number(a.workers),
  cut: [cutMin / 1000, cutMax / 1000],
  history: { size: Number(a["history-size"]), ttl: Number(a["history-ttl"]) },
  published: [...published.values()].reduce((x, y) => x + y, 0),
  refusedPushes,
  degradedPushes,
  events,
  ...sum,
  lostTail,
  lost,
};
console.log(JSON.stringify(result));
// Beyond the window, a busy room always has missed pushes older than the
// window: a room recovery that replays anything would be a partial replay.
const bad = a["expect-refusals"]
  ? (sum.refused.window ?? 0) === 0 || sum.replays.room > 0 || sum.gaps > 0 ||
    sum.duplicates > 0 || sum.misplaced > 0 || lostTail > 0
  : lost > 0 || sum.duplicates > 0 || sum.misplaced > 0 || sum.epochBreaks > 0 || refusals > 0;
Deno.exit(bad ? 1 : 0);
