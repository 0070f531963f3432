// /metrics in the Prometheus text format, /readyz against /healthz, and the byte counters
// of every socket transport, over real loopback connections.
import assert from "node:assert/strict";
import { createApiHandler } from "../src/api/push_api.ts";
import { collectMetrics, formatMetrics } from "../src/api/metrics.ts";
import type { ClusterState } from "../src/cluster/cluster.ts";
import { MemoryCluster } from "../src/cluster/memory_cluster.ts";
import { Op } from "../src/protocol/op.ts";
import { Comet } from "../src/server/comet.ts";
import type { CometServer } from "../src/serve.ts";
import { traffic, trafficCounter } from "../src/transport/traffic.ts";
import { startServer, TestClient, until, utf8 } from "./_helpers.ts";
import { goimMessages, WsClient } from "./_ws_client.ts";
import { VERSION } from "../src/version.ts";

/** One sample line per series: `name{labels}` → value. */
type Samples = Map<string, number>;

/** Parses the exposition text strictly: HELP and TYPE before each family's samples. */
function parse(text: string): { samples: Samples; types: Map<string, string> } {
  const samples: Samples = new Map();
  const types = new Map<string, string>();
  const helped = new Set<string>();
  assert.ok(text.endsWith("\n"), "ends with a newline");
  for (const line of text.slice(0, -1).split("\n")) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line);
    if (m) {
      helped.add(m[1]!);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/.exec(line);
    if (m) {
      assert.ok(helped.has(m[1]!), `HELP before TYPE of ${m[1]}`);
      assert.ok(!types.has(m[1]!), `one TYPE line for ${m[1]}`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$/
      .exec(line);
    assert.ok(m, `a well-formed sample line: ${line}`);
    assert.ok(types.has(m[1]!), `TYPE before the samples of ${m[1]}`);
    if (types.get(m[1]!) === "counter") assert.match(m[1]!, /_total$/);
    const value = Number(m[3]);
    assert.ok(!Number.isNaN(value), line);
    samples.set(m[1]! + (m[2] ?? ""), value);
  }
  return { samples, types };
}

async function scrape(server: CometServer, init: RequestInit = {}) {
  const res = await fetch(`http://127.0.0.1:${server.addrs.api!.port}/metrics`, init);
  const body = await res.text();
  return { res, ...(res.ok ? parse(body) : { samples: new Map(), types: new Map() }) };
}

function value(samples: Samples, series: string): number {
  const v = samples.get(series);
  assert.notEqual(v, undefined, `series ${series} is exported`);
  return v!;
}

Deno.test("metrics: every figure of the brief, with its type, in the 0.0.4 text format", async () => {
  await using server = startServer({ pkg: { hostname: "127.0.0.1", port: 0 } });
  const { res, samples, types } = await scrape(server);
  assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const expected: Record<string, string> = {
    comet_connections: "gauge",
    comet_handshaking: "gauge",
    comet_timers: "gauge",
    comet_rooms: "gauge",
    comet_queue_depth: "gauge",
    comet_queue_depth_max: "gauge",
    comet_read_buffers: "gauge",
    comet_read_buffer_slabs: "gauge",
    comet_accepted_total: "counter",
    comet_auth_ok_total: "counter",
    comet_auth_failed_total: "counter",
    comet_pushes_total: "counter",
    comet_deliveries_total: "counter",
    comet_dropped_total: "counter",
    comet_slow_closed_total: "counter",
    comet_heartbeat_timeouts_total: "counter",
    comet_handshake_timeouts_total: "counter",
    comet_protocol_errors_total: "counter",
    comet_received_bytes_total: "counter",
    comet_sent_bytes_total: "counter",
    comet_cluster_state: "gauge",
    comet_ready: "gauge",
    process_resident_memory_bytes: "gauge",
    comet_uptime_seconds: "gauge",
  };
  for (const [name, type] of Object.entries(expected)) assert.equal(types.get(name), type, name);
  for (const kind of ["keys", "mids", "room", "all"]) {
    assert.equal(value(samples, `comet_pushes_total{kind="${kind}"}`), 0);
  }
  assert.equal(value(samples, 'comet_cluster_state{state="ready"}'), 1);
  assert.equal(value(samples, 'comet_cluster_state{state="reconnecting"}'), 0);
  assert.equal(value(samples, "comet_ready"), 1);
  assert.ok(value(samples, "process_resident_memory_bytes") > 1e6);
  assert.ok(value(samples, "comet_uptime_seconds") > 0);
});

Deno.test("metrics: connections by transport, rooms, pushes, deliveries and bytes follow the clients", async () => {
  await using server = startServer({ pkg: { hostname: "127.0.0.1", port: 0 } });
  const before = (await scrape(server)).samples;
  const tcpIn = before.get('comet_received_bytes_total{transport="tcp"}') ?? 0;
  const tcpOut = before.get('comet_sent_bytes_total{transport="tcp"}') ?? 0;
  const buffers = value(before, "comet_read_buffers");

  await using a = await TestClient.auth(server.addrs.tcp!.port, {
    mid: 1,
    key: "a",
    room_id: "live://1",
    accepts: [1000],
  });
  await using b = await TestClient.auth(server.addrs.tcp!.port, {
    mid: 2,
    key: "b",
    room_id: "live://2",
    accepts: [1000],
  });
  const ws = await WsClient.connect(
    await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.ws!.port }),
  );
  const auth = JSON.stringify({ mid: 3, key: "w", room_id: "live://1", accepts: [1000] });
  const frame = new Uint8Array(16 + auth.length);
  const view = new DataView(frame.buffer);
  view.setInt32(0, frame.length);
  view.setInt16(4, 16);
  view.setInt16(6, 1);
  view.setInt32(8, Op.Auth);
  view.setInt32(12, 1);
  frame.set(utf8.encode(auth), 16);
  await ws.send(frame);
  const reply = await ws.next();
  assert.equal(goimMessages(reply!.payload)[0]!.op, Op.AuthReply);
  const pkg = await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.pkg!.port });
  const pkgAuth = utf8.encode(JSON.stringify({ mid: 4, key: "p", accepts: [1000] }));
  await pkg.write(new Uint8Array([0, pkgAuth.length, ...pkgAuth]));
  assert.ok(await until(() => server.comet.connections === 4));

  assert.equal(server.comet.pushRoom("live://1", 1000, utf8.encode("to room 1")), 2);
  assert.equal(server.comet.pushAll(1000, utf8.encode("to all")), 4);
  await a.nextOp(1000);
  await a.nextOp(1000);

  const { samples } = await scrape(server);
  assert.equal(value(samples, 'comet_connections{transport="tcp"}'), 2);
  assert.equal(value(samples, 'comet_connections{transport="ws"}'), 1);
  assert.equal(value(samples, 'comet_connections{transport="pkg"}'), 1);
  assert.equal(value(samples, "comet_rooms"), 2);
  assert.equal(value(samples, "comet_auth_ok_total"), 4);
  assert.equal(value(samples, 'comet_pushes_total{kind="room"}'), 1);
  assert.equal(value(samples, 'comet_pushes_total{kind="all"}'), 1);
  assert.equal(value(samples, "comet_deliveries_total"), 6);
  assert.equal(value(samples, "comet_timers"), 4);
  assert.equal(value(samples, "comet_handshaking"), 0);
  // A pending read each on two TCP connections and one WebSocket (pkg reads its own way).
  assert.equal(value(samples, "comet_read_buffers"), buffers + 3);
  assert.ok(value(samples, "comet_read_buffer_slabs") >= 1);
  // One auth frame in and its reply plus two pushes out, per TCP client at least.
  assert.ok(value(samples, 'comet_received_bytes_total{transport="tcp"}') >= tcpIn + 2 * 16);
  assert.ok(value(samples, 'comet_sent_bytes_total{transport="tcp"}') >= tcpOut + 2 * 16);
  assert.ok(value(samples, 'comet_received_bytes_total{transport="ws"}') >= frame.length);
  assert.ok(value(samples, 'comet_received_bytes_total{transport="pkg"}') >= 2 + pkgAuth.length);
  assert.ok(value(samples, 'comet_sent_bytes_total{transport="pkg"}') >= 2 + "to all".length);

  await ws.close(1000);
  pkg.close();
  await b.close();
  assert.ok(await until(() => server.comet.connections === 1));
  const after = (await scrape(server)).samples;
  assert.equal(value(after, 'comet_connections{transport="ws"}'), 0, "idle transports stay listed");
  assert.equal(value(after, 'comet_connections{transport="pkg"}'), 0);
  assert.equal(value(after, 'comet_connections{transport="tcp"}'), 1);
  // The buffers of the connections that left go back once their reads have settled.
  let held = value(after, "comet_read_buffers");
  for (let i = 0; i < 50 && held !== buffers + 1; i++) {
    await new Promise((r) => setTimeout(r, 20));
    held = value((await scrape(server)).samples, "comet_read_buffers");
  }
  assert.equal(held, buffers + 1);
});

Deno.test("metrics: a counter the hub gains later is exported without changes", () => {
  const comet = new Comet();
  // As a new field of CometStats would be, flat and nested.
  const stats = comet.stats as unknown as Record<string, unknown>;
  stats.limitHits = 3;
  stats.closedBy = { idle: 2, policy: { perIp: 1 } };
  const { samples, types } = parse(formatMetrics(collectMetrics(comet)));
  assert.equal(types.get("comet_limit_hits_total"), "counter");
  assert.equal(value(samples, "comet_limit_hits_total"), 3);
  assert.equal(value(samples, 'comet_closed_by_total{kind="idle"}'), 2);
  assert.equal(value(samples, 'comet_closed_by_total{kind="policy_per_ip"}'), 1);
});

Deno.test("metrics: queue depth sums every connection's queue and reports the largest", async () => {
  await using server = startServer();
  const port = server.addrs.tcp!.port;
  await using a = await TestClient.auth(port, { key: "a", room_id: "live://q", accepts: [1000] });
  await using b = await TestClient.auth(port, { key: "b", room_id: "live://q" });
  // Writers run only once this turn yields, so everything pushed now is still queued.
  for (let i = 0; i < 5; i++) server.comet.pushRoom("live://q", 1000, utf8.encode("r"));
  for (let i = 0; i < 3; i++) server.comet.pushKeys(["a"], 1000, utf8.encode("k"));
  const snapshot = collectMetrics(server.comet);
  assert.deepEqual(snapshot.queue, { depth: 13, max: 8 });
  for (let i = 0; i < 8; i++) await a.nextOp(1000);
  for (let i = 0; i < 5; i++) await b.nextOp(1000);
  assert.deepEqual(collectMetrics(server.comet).queue, { depth: 0, max: 0 });
});

Deno.test("metrics, readyz: the token protects them like the rest of the API", async () => {
  await using server = startServer({ apiToken: "s3cret" });
  for (const path of ["/metrics", "/readyz", "/healthz"]) {
    const url = `http://127.0.0.1:${server.addrs.api!.port}${path}`;
    const denied = await fetch(url);
    await denied.body?.cancel();
    assert.equal(denied.status, 401, path);
    const allowed = await fetch(url, { headers: { authorization: "Bearer s3cret" } });
    await allowed.body?.cancel();
    assert.equal(allowed.status, 200, path);
  }
});

Deno.test("readyz: 200 when ready, 503 while stopping; healthz stays as it was", async () => {
  await using server = startServer();
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${server.addrs.api!.port}${path}`);
    return { status: res.status, body: await res.json() };
  };
  const ready = await get("/readyz");
  assert.equal(ready.status, 200);
  assert.deepEqual(ready.body.data, { status: "ready", broker: "ready" });
  await server.comet.close(100);
  const stopping = await get("/readyz");
  assert.equal(stopping.status, 503);
  assert.equal(stopping.body.code, -503);
  assert.equal(stopping.body.data.status, "stopping");
  assert.equal((await get("/healthz")).status, 503);
  const { samples } = await scrape(server);
  assert.equal(value(samples, "comet_ready"), 0);
  assert.equal(value(samples, "comet_closing"), 1);
});

Deno.test("readyz: 503 while the broker is away, when healthz still says 200 degraded", async () => {
  let state: ClusterState = "reconnecting";
  class Flaky extends MemoryCluster {
    override get state(): ClusterState {
      return state;
    }
    override health() {
      return { ok: state === "ready", detail: { broker: state } };
    }
  }
  await using comet = new Comet();
  await using cluster = new Flaky();
  cluster.attach(comet, { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 });
  const handle = createApiHandler(comet, { cluster });
  const get = async (path: string) => {
    const res = await handle(new Request(`http://localhost${path}`));
    return { status: res.status, text: await res.text() };
  };
  const health = await get("/healthz");
  assert.equal(health.status, 200);
  assert.equal(JSON.parse(health.text).data.status, "degraded");
  const notReady = await get("/readyz");
  assert.equal(notReady.status, 503);
  assert.deepEqual(JSON.parse(notReady.text).data, { status: "not ready", broker: "reconnecting" });
  const metrics = parse((await get("/metrics")).text).samples;
  assert.equal(value(metrics, 'comet_cluster_state{state="reconnecting"}'), 1);
  assert.equal(value(metrics, 'comet_cluster_state{state="ready"}'), 0);
  assert.equal(value(metrics, "comet_ready"), 0);
  state = "ready";
  assert.equal((await get("/readyz")).status, 200);
});

Deno.test("traffic: counters are shared per transport name and live", () => {
  const counter = trafficCounter("test-transport");
  counter.bytesIn += 5;
  counter.bytesOut += 7;
  assert.equal(trafficCounter("test-transport"), counter);
  assert.deepEqual(traffic().get("test-transport"), { bytesIn: 5, bytesOut: 7 });
  const { samples } = parse(formatMetrics(collectMetrics(new Comet())));
  assert.equal(value(samples, 'comet_received_bytes_total{transport="test-transport"}'), 5);
  assert.equal(value(samples, 'comet_sent_bytes_total{transport="test-transport"}'), 7);
  assert.equal(value(samples, 'comet_connections{transport="test-transport"}'), 0);
});

Deno.test("metrics: comet_build_info names Comet's version and Deno's", () => {
  const { samples } = parse(formatMetrics(collectMetrics(new Comet())));
  assert.equal(
    value(samples, `comet_build_info{version="${VERSION}",deno="${Deno.version.deno}"}`),
    1,
  );
});

Deno.test("metrics: label values are escaped", () => {
  const comet = new Comet();
  const text = formatMetrics({
    ...collectMetrics(comet),
    node: 'a"b\\c\nd',
  });
  assert.ok(text.includes('comet_node_info{node="a\\"b\\\\c\\nd"} 1'), text);
  parse(text);
});
