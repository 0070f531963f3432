// Summing the workers' /metrics snapshots: history figures add up to the process's.
import assert from "node:assert/strict";
import { collectMetrics, type MetricsSnapshot } from "../src/api/metrics.ts";
import { mergeMetrics } from "../src/api/worker_metrics.ts";
import { BusCluster } from "../src/cluster/bus_cluster.ts";
import { Comet } from "../src/server/comet.ts";
import { channelName } from "./_bus_workers.ts";

function withHistory(snap: MetricsSnapshot, streams: number, entries: number, bytes: number) {
  return { ...snap, history: { streams, entries, bytes } } as MetricsSnapshot;
}

Deno.test("the workers' history figures are summed, and left out when no worker has them", async () => {
  await using comet = new Comet();
  await using cluster = new BusCluster({ workerId: 0, channel: channelName() });
  cluster.attach(comet, { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 });
  const snap = collectMetrics(comet, { cluster });
  const merged = mergeMetrics(
    {
      replies: [
        { workerId: 0, value: withHistory(snap, 2, 10, 100) },
        { workerId: 1, value: withHistory(snap, 3, 5, 50) },
      ],
      missing: [],
    },
    cluster,
    cluster,
  );
  assert.deepEqual((merged as unknown as { history: unknown }).history, {
    streams: 5,
    entries: 15,
    bytes: 150,
  });
  const plain = mergeMetrics(
    { replies: [{ workerId: 0, value: snap }], missing: [] },
    cluster,
    cluster,
  );
  assert.equal("history" in plain, false);
});
