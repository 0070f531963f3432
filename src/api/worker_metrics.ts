/**
 * `/metrics` and `/admin` for a node of several workers (a cluster with
 * {@linkcode Cluster.workers}): the worker that takes the request gathers
 * every worker's {@linkcode MetricsSnapshot} over the bus and sums them.
 * A node of one isolate takes its snapshot as before.
 *
 * @module
 */
import type { Cluster, Gathered, WorkerGroup } from "../cluster/cluster.ts";
import type { Comet } from "../server/comet.ts";
import type { HistoryFigures } from "../server/streams.ts";
import { collectMetrics, type CollectMetricsOptions, type MetricsSnapshot } from "./metrics.ts";

/** The topic workers answer with their own {@linkcode MetricsSnapshot}. */
export const METRICS_TOPIC = "metrics";

/**
 * Makes this worker answer when another gathers metrics; nothing for a
 * cluster without workers. The push API calls it once per handler.
 *
 * @example
 * ```ts
 * import { BusCluster } from "../cluster/bus_cluster.ts";
 * import { Comet } from "../server/comet.ts";
 * import { answerMetrics, gatherMetrics } from "./worker_metrics.ts";
 *
 * await using comet = new Comet();
 * await using cluster = new BusCluster({ workerId: 0, channel: "comet-metrics-doc" });
 * cluster.attach(comet, { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 });
 * answerMetrics(comet, { cluster });
 * console.log((await gatherMetrics(comet, { cluster })).workers); // [{ worker: 0, ... }]
 * ```
 */
export function answerMetrics(comet: Comet, options: CollectMetricsOptions): void {
  options.cluster?.workers?.answer(METRICS_TOPIC, () => collectMetrics(comet, options));
}

/**
 * The snapshot `/metrics` and `/admin/stats` show: this hub's alone, or,
 * with workers, every worker's summed (see {@linkcode mergeMetrics}).
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import { gatherMetrics } from "./worker_metrics.ts";
 *
 * await using comet = new Comet();
 * console.log((await gatherMetrics(comet)).connectionsTotal); // 0
 * ```
 */
export async function gatherMetrics(
  comet: Comet,
  options: CollectMetricsOptions = {},
): Promise<MetricsSnapshot> {
  const cluster = options.cluster;
  const workers = cluster?.workers;
  if (cluster === undefined || workers === undefined) return collectMetrics(comet, options);
  const gathered = await workers.gather<MetricsSnapshot>(METRICS_TOPIC);
  const own = gathered.replies[0]?.workerId === workers.workerId ? [] : [{
    workerId: workers.workerId,
    value: collectMetrics(comet, options),
  }];
  // Answered here when this worker has no responder: it is then not missing.
  const missing = gathered.missing.filter((w) => w !== workers.workerId);
  return mergeMetrics(
    { replies: [...own, ...gathered.replies], missing },
    cluster,
    workers,
    options.topRooms ?? 10,
  );
}

/**
 * Sums the workers' snapshots into the process's. Counters, connections,
 * queue and backlog bytes, traffic and heap are summed; the largest queue,
 * room-log cap and the resident set (one process) are the largest;
 * distinct rooms, client IPs and the fullest rooms come from the cluster's
 * merged counts; history figures (`history`: streams, entries, bytes),
 * where the snapshots have them, are summed. The first reply (the asking worker's) gives the time,
 * node, cluster state, readiness and uptime. `workers` lists each worker's
 * figures and `missingWorkers` the workers that did not answer.
 *
 * @throws {TypeError} When there is no reply at all.
 *
 * @example
 * ```ts
 * import { BusCluster } from "../cluster/bus_cluster.ts";
 * import { Comet } from "../server/comet.ts";
 * import { collectMetrics } from "./metrics.ts";
 * import { mergeMetrics } from "./worker_metrics.ts";
 *
 * await using comet = new Comet();
 * await using cluster = new BusCluster({ workerId: 0, channel: "comet-merge-doc" });
 * cluster.attach(comet, { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 });
 * const value = collectMetrics(comet, { cluster });
 * const merged = mergeMetrics({ replies: [{ workerId: 0, value }], missing: [] }, cluster, cluster);
 * console.log(merged.connectionsTotal, merged.missingWorkers); // 0 []
 * ```
 */
export function mergeMetrics(
  gathered: Gathered<MetricsSnapshot>,
  cluster: Cluster,
  workers: WorkerGroup,
  topRooms = 10,
): MetricsSnapshot {
  const snaps = gathered.replies.map((r) => r.value);
  const first = snaps[0];
  if (first === undefined) throw new TypeError("No worker answered with its metrics");
  const sum = (pick: (s: MetricsSnapshot) => number) => snaps.reduce((n, s) => n + pick(s), 0);
  const max = (pick: (s: MetricsSnapshot) => number) => Math.max(...snaps.map(pick));
  return {
    ...first,
    closing: snaps.some((s) => s.closing),
    connections: _sumRecords(snaps.map((s) => s.connections)) as Record<string, number>,
    connectionsTotal: sum((s) => s.connectionsTotal),
    handshaking: sum((s) => s.handshaking),
    timers: sum((s) => s.timers),
    rooms: workers.roomCount(),
    ips: cluster.onlineTotal().ipCount,
    queue: { depth: sum((s) => s.queue.depth), max: max((s) => s.queue.max) },
    writeLine: {
      waiting: sum((s) => s.writeLine.waiting),
      inFlight: sum((s) => s.writeLine.inFlight),
    },
    backlog: {
      queueBytes: sum((s) => s.backlog.queueBytes),
      roomBytes: sum((s) => s.backlog.roomBytes),
      maxBytes: sum((s) => s.backlog.maxBytes),
      maxRoomBytes: max((s) => s.backlog.maxRoomBytes),
    },
    readBuffers: {
      used: sum((s) => s.readBuffers.used),
      slabs: sum((s) => s.readBuffers.slabs),
    },
    stats: _sumRecords(snaps.map((s) => s.stats)),
    traffic: _sumRecords(snaps.map((s) => s.traffic)) as MetricsSnapshot["traffic"],
    acceptErrors: _sumRecords(snaps.map((s) => s.acceptErrors)) as MetricsSnapshot["acceptErrors"],
    memory: {
      rss: max((s) => s.memory.rss),
      heapUsed: sum((s) => s.memory.heapUsed),
      heapTotal: sum((s) => s.memory.heapTotal),
      external: sum((s) => s.memory.external),
    },
    startTime: Math.min(...snaps.map((s) => s.startTime)),
    uptime: max((s) => s.uptime),
    topRooms: cluster.topRooms("", topRooms),
    ..._sumHistory(snaps),
    workers: gathered.replies.map(({ workerId, value }) => ({
      worker: workerId,
      connections: value.connectionsTotal,
      handshaking: value.handshaking,
      queueDepth: value.queue.depth,
      heapUsed: value.memory.heapUsed,
    })),
    missingWorkers: [...gathered.missing],
  };
}

/**
 * The workers' history figures summed (`comet_history_*`): each worker holds
 * the streams it owns, so the sum is the process's; nothing when no worker
 * has a history.
 */
function _sumHistory(snaps: MetricsSnapshot[]): Partial<MetricsSnapshot> {
  const figures = snaps.flatMap((s) => s.history === undefined ? [] : [{ ...s.history }]);
  if (figures.length === 0) return {};
  return { history: _sumRecords(figures) as unknown as HistoryFigures };
}

/** Nested records of numbers summed key by key. */
function _sumRecords(records: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const record of records) {
    for (const [key, v] of Object.entries(record)) {
      if (typeof v === "number") out[key] = ((out[key] as number | undefined) ?? 0) + v;
      else if (v !== null && typeof v === "object") {
        const into = out[key];
        out[key] = _sumRecords([
          (into !== null && typeof into === "object" ? into : {}) as Record<string, unknown>,
          v as Record<string, unknown>,
        ]);
      }
    }
  }
  return out;
}
