import type { Cluster, ClusterState } from "../cluster/cluster.ts";
import type { BacklogFigures, Comet, RoomCount } from "../server/comet.ts";
import type { HistoryFigures } from "../server/streams.ts";
import { acceptErrors } from "../transport/accept_errors.ts";
import { readBufferFigures } from "../transport/read_buffers.ts";
import { traffic, type TrafficCounter } from "../transport/traffic.ts";
import { VERSION } from "../version.ts";

/** Every state a cluster can be in, so that the state gauge lists all of them. */
const _CLUSTER_STATES: readonly ClusterState[] = ["connecting", "ready", "reconnecting", "closed"];

/** What the known counters of `comet.stats` mean; a counter added later gets a generic line. */
const _STAT_HELP: Record<string, string> = {
  accepted: "Connections accepted, authenticated or not.",
  authOk: "Successful authentications.",
  authFailed: "Refused authentications.",
  pushes: "Push requests by kind.",
  deliveries: "Frames queued to connections by pushes.",
  dropped: "Messages dropped by the drop slow-consumer policy.",
  slowClosed: "Connections closed by the close slow-consumer policy.",
  handshakeTimeouts: "Connections closed for not authenticating in time.",
  heartbeatTimeouts: "Connections closed for missing heartbeats.",
  protocolErrors: "Connections closed for breaking the protocol.",
  stalledWrites: "Writes still in flight after 50 ms that stopped holding a write place.",
  pushesRefused: "Pushes refused whole (API 429) because a backlog cap was reached, by cap.",
  recoveryFailed: "Opted-in connections closed because the history failed to answer.",
  recoveries:
    "Streams clients asked to recover at auth, by result: recovered, or not for another epoch, the window or another room.",
};

/** The label of a counter's parts where it is not `kind`. */
const _STAT_LABEL: Record<string, string> = { recoveries: "result" };

/** Options for {@linkcode collectMetrics}. */
export interface CollectMetricsOptions {
  /** The cluster the hub is a node of, for its state and node id. Default: none (a lone hub). */
  cluster?: Cluster;
  /** How many of the fullest rooms to list in {@linkcode MetricsSnapshot.topRooms}. Default 10. */
  topRooms?: number;
}

/** Figures of one hub and its process at one moment; see {@linkcode collectMetrics}. */
export interface MetricsSnapshot {
  /** When it was taken, in milliseconds since the epoch. */
  time: number;
  /** The node's id in its cluster (`"local"` for a lone hub). */
  node: string;
  /** The cluster's state; `"ready"` for a lone hub. */
  cluster: ClusterState;
  /** Accepting clients and, in a cluster, reaching the other nodes: what `/readyz` reports. */
  ready: boolean;
  /** The hub is shutting down. */
  closing: boolean;
  /**
   * Authenticated connections by transport name (`tcp`, `ws`, `pkg` ...);
   * every transport the process has served is listed, at 0 when idle.
   */
  connections: Record<string, number>;
  /** Authenticated connections, all transports. */
  connectionsTotal: number;
  /** Connections still in their handshake. */
  handshaking: number;
  /** Scheduled deadlines in the hub's timer heap (one per live connection). */
  timers: number;
  /** Non-empty rooms. */
  rooms: number;
  /** Distinct client IP addresses among authenticated connections. */
  ips: number;
  /** Frames waiting in connection queues: the sum over all connections, and the largest. */
  queue: { depth: number; max: number };
  /** Connections waiting in the write line, and writes in flight holding a place. */
  writeLine: { waiting: number; inFlight: number };
  /** Bytes waiting to be written, and their caps (see `Comet.backlog`). */
  backlog: BacklogFigures;
  /**
   * Read buffers of this process's TCP and WebSocket wires: held (one per
   * connection with a read pending) and the shared slabs they are carved from.
   */
  readBuffers: { used: number; slabs: number };
  /** A copy of the numbers in `comet.stats`: every counter the hub keeps, nested ones included. */
  stats: Record<string, unknown>;
  /** Bytes moved per transport by this process's wires. */
  traffic: Record<string, TrafficCounter>;
  /**
   * Failed `accept()` calls of this process's listeners, by listener
   * (`api`, `tcp`, `ws` ...) then kind (`emfile`: out of descriptors,
   * `enfile`, `other`).
   */
  acceptErrors: Record<string, Record<string, number>>;
  /** The process's memory, in bytes (`Deno.memoryUsage()`). */
  memory: { rss: number; heapUsed: number; heapTotal: number; external: number };
  /** When the process started, in seconds since the epoch. */
  startTime: number;
  /** Seconds since the process started. */
  uptime: number;
  /** The fullest rooms of this hub (of the process, with workers), fullest first. */
  topRooms: RoomCount[];
  /** What the hub's history holds, when it tells (`figures()`); absent with streams off. */
  history?: HistoryFigures;
  /** Pushes the cluster fetched from the shared history to fill gaps; absent when it has none. */
  gapsFilled?: number;
  /**
   * Each worker's own figures, when the node is several workers and the
   * snapshot sums them (see `gatherMetrics`); absent for one isolate.
   */
  workers?: WorkerFigures[];
  /** Workers that did not answer in time; with {@linkcode MetricsSnapshot.workers} only. */
  missingWorkers?: number[];
}

/** One worker's figures in a process-wide {@linkcode MetricsSnapshot}. */
export interface WorkerFigures {
  /** The worker's number. */
  worker: number;
  /** Its authenticated connections. */
  connections: number;
  /** Its connections still in their handshake. */
  handshaking: number;
  /** Frames waiting in its connection queues. */
  queueDepth: number;
  /** Its V8 heap in use, in bytes. */
  heapUsed: number;
}

/**
 * Takes a {@linkcode MetricsSnapshot} of `comet`. Connections by transport
 * and queue depths are counted when asked (`Comet.connectionFigures` walks
 * every connection once), so that the push path pays nothing for them; a
 * scrape costs time in proportion to the connections.
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import { collectMetrics } from "./metrics.ts";
 *
 * await using comet = new Comet();
 * const snapshot = collectMetrics(comet);
 * console.log(snapshot.connectionsTotal, snapshot.queue.depth); // 0 0
 * ```
 */
export function collectMetrics(comet: Comet, options: CollectMetricsOptions = {}): MetricsSnapshot {
  const moved: Record<string, TrafficCounter> = {};
  const connections: Record<string, number> = {};
  for (const [transport, { bytesIn, bytesOut }] of traffic()) {
    moved[transport] = { bytesIn, bytesOut };
    connections[transport] = 0;
  }
  const { transports, queue } = comet.connectionFigures();
  for (const [transport, n] of transports) {
    connections[transport] = (connections[transport] ?? 0) + n;
  }
  const cluster = options.cluster;
  const state = cluster?.state ?? "ready";
  const { rss, heapUsed, heapTotal, external } = Deno.memoryUsage();
  const history = comet.history?.figures?.();
  return {
    time: Date.now(),
    node: cluster?.nodeId ?? "local",
    cluster: state,
    ready: !comet.closing && state === "ready",
    closing: comet.closing,
    connections,
    connectionsTotal: comet.connections,
    handshaking: comet.handshaking,
    timers: comet.timers,
    rooms: comet.rooms.size,
    ips: comet.onlineTotal().ipCount,
    queue,
    writeLine: comet.writeLine,
    backlog: comet.backlog,
    readBuffers: readBufferFigures(),
    stats: _numbers(comet.stats),
    traffic: moved,
    acceptErrors: Object.fromEntries([...acceptErrors()].map(([l, kinds]) => [l, { ...kinds }])),
    memory: { rss, heapUsed, heapTotal, external },
    startTime: performance.timeOrigin / 1000,
    uptime: performance.now() / 1000,
    topRooms: comet.topRooms("", options.topRooms ?? 10),
    ...(history !== undefined && { history: { ...history } }),
    ...(cluster?.gapsFilled !== undefined && { gapsFilled: cluster.gapsFilled }),
  };
}

/** A copy of the numbers in `value`, nested objects of numbers included; nothing else. */
function _numbers(value: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v === "number") out[key] = v;
    else if (v !== null && typeof v === "object") out[key] = _numbers(v);
  }
  return out;
}

/** One metric family of the text format: its HELP and TYPE lines, then its samples. */
class _Family {
  #name: string;
  #lines: string[];

  constructor(name: string, type: "counter" | "gauge", help: string) {
    this.#name = name;
    this.#lines = [`# HELP ${name} ${_escapeHelp(help)}`, `# TYPE ${name} ${type}`];
  }

  sample(value: number, labels?: Record<string, string>): this {
    this.#lines.push(`${this.#name}${_labels(labels)} ${_value(value)}`);
    return this;
  }

  toString(): string {
    return this.#lines.join("\n");
  }
}

function _escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function _labels(labels: Record<string, string> | undefined): string {
  if (labels === undefined) return "";
  const parts = Object.entries(labels).map(([k, v]) =>
    `${k}="${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")}"`
  );
  return `{${parts.join(",")}}`;
}

function _value(n: number): string {
  if (Number.isFinite(n)) return String(n);
  return Number.isNaN(n) ? "NaN" : n > 0 ? "+Inf" : "-Inf";
}

/** `heartbeatTimeouts` → `heartbeat_timeouts`, anything outside the metric alphabet → `_`. */
function _snake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase().replace(/[^a-z0-9_]/g, "_");
}

/** The numbers of a nested stats object, its deeper levels joined by `_`. */
function _leaves(value: object, prefix: string, out: [string, number][]): [string, number][] {
  for (const [key, v] of Object.entries(value)) {
    const name = prefix === "" ? key : `${prefix}_${key}`;
    if (typeof v === "number") out.push([name, v]);
    else if (v !== null && typeof v === "object") _leaves(v, name, out);
  }
  return out;
}

/**
 * Renders a {@linkcode MetricsSnapshot} in the Prometheus text exposition
 * format 0.0.4, as `GET /metrics` serves it. Every numeric field of
 * `comet.stats` becomes a counter `comet_<name>_total` (`authOk` →
 * `comet_auth_ok_total`), found by walking the object, so counters the hub
 * gains later appear without changes here; a nested object of numbers
 * (`pushes`) becomes one counter with a `kind` label (`kind="room"`).
 * Connections, handshakes, timers, rooms and queue depths are gauges, as
 * are the cluster state (`comet_cluster_state{state}`, 1 for the current
 * one) and the process's memory and uptime.
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import { collectMetrics, formatMetrics } from "./metrics.ts";
 *
 * await using comet = new Comet();
 * const text = formatMetrics(collectMetrics(comet));
 * console.log(text.includes('comet_pushes_total{kind="room"} 0')); // true
 * ```
 */
export function formatMetrics(snapshot: MetricsSnapshot): string {
  const families: _Family[] = [];
  const family = (name: string, type: "counter" | "gauge", help: string) => {
    const f = new _Family(name, type, help);
    families.push(f);
    return f;
  };
  // Unlabelled gauges: name, help, value.
  const gauges = (rows: [string, string, number][]) => {
    for (const [name, help, value] of rows) family(name, "gauge", help).sample(value);
  };

  const byTransport = family(
    "comet_connections",
    "gauge",
    "Authenticated connections by transport.",
  );
  for (const [transport, n] of Object.entries(snapshot.connections)) {
    byTransport.sample(n, { transport });
  }
  gauges([
    ["comet_handshaking", "Connections still in their handshake.", snapshot.handshaking],
    [
      "comet_timers",
      "Scheduled connection deadlines (one per live connection).",
      snapshot.timers,
    ],
    ["comet_rooms", "Non-empty rooms.", snapshot.rooms],
    ["comet_online_ips", "Distinct client IP addresses among connections.", snapshot.ips],
    [
      "comet_queue_depth",
      "Frames waiting in connection queues, all connections.",
      snapshot.queue.depth,
    ],
    [
      "comet_queue_depth_max",
      "Frames waiting in the fullest connection queue.",
      snapshot.queue.max,
    ],
    [
      "comet_write_line_waiting",
      "Connections waiting for a write place.",
      snapshot.writeLine.waiting,
    ],
    [
      "comet_write_line_in_flight",
      "Writes in flight holding a write place.",
      snapshot.writeLine.inFlight,
    ],
    [
      "comet_read_buffers",
      "Read buffers held by TCP and WebSocket connections (one per pending read).",
      snapshot.readBuffers.used,
    ],
    [
      "comet_read_buffer_slabs",
      "Shared slabs the read buffers are carved from.",
      snapshot.readBuffers.slabs,
    ],
  ]);

  const backlog = snapshot.backlog;
  family(
    "comet_backlog_bytes",
    "gauge",
    "Bytes waiting to be written: frames in connection queues and in room logs, each once.",
  ).sample(backlog.queueBytes, { kind: "queues" }).sample(backlog.roomBytes, { kind: "rooms" });
  family(
    "comet_backlog_limit_bytes",
    "gauge",
    "Caps on waiting bytes; a push past them is refused: the hub's, and one room log's.",
  ).sample(backlog.maxBytes, { kind: "server" }).sample(backlog.maxRoomBytes, { kind: "room" });

  for (const [key, value] of Object.entries(snapshot.stats)) {
    const name = `comet_${_snake(key).replace(/_total$/, "")}_total`;
    const help = _STAT_HELP[key] ?? `Comet counter stats.${key}.`;
    if (typeof value === "number") {
      family(name, "counter", help).sample(value);
    } else if (value !== null && typeof value === "object") {
      const f = family(name, "counter", help);
      const label = _STAT_LABEL[key] ?? "kind";
      for (const [kind, n] of _leaves(value, "", [])) f.sample(n, { [label]: _snake(kind) });
    }
  }

  _streamFamilies(snapshot, family, gauges);

  const bytesIn = family(
    "comet_received_bytes_total",
    "counter",
    "Bytes read from clients by transport (WebSocket: after the opening handshake).",
  );
  const bytesOut = family(
    "comet_sent_bytes_total",
    "counter",
    "Bytes written to clients by transport.",
  );
  for (const [transport, counter] of Object.entries(snapshot.traffic)) {
    bytesIn.sample(counter.bytesIn, { transport });
    bytesOut.sample(counter.bytesOut, { transport });
  }

  const acceptFailed = family(
    "comet_accept_errors_total",
    "counter",
    "Failed accepts by listener and error (emfile: out of file descriptors).",
  );
  for (const [listener, kinds] of Object.entries(snapshot.acceptErrors)) {
    for (const [error, n] of Object.entries(kinds)) acceptFailed.sample(n, { listener, error });
  }

  const state = family(
    "comet_cluster_state",
    "gauge",
    "The cluster's state: 1 for the current one (a lone node is always ready).",
  );
  for (const s of _CLUSTER_STATES) state.sample(s === snapshot.cluster ? 1 : 0, { state: s });
  family("comet_node_info", "gauge", "This node's id in its cluster.")
    .sample(1, { node: snapshot.node });
  family("comet_build_info", "gauge", "Comet's version and the Deno it runs on.")
    .sample(1, { version: VERSION, deno: Deno.version.deno });
  const memory = snapshot.memory;
  gauges([
    ["comet_ready", "1 while /readyz answers 200.", snapshot.ready ? 1 : 0],
    ["comet_closing", "1 once the hub is shutting down.", snapshot.closing ? 1 : 0],
    ["process_resident_memory_bytes", "Resident set size in bytes.", memory.rss],
    ["comet_heap_used_bytes", "V8 heap in use, in bytes.", memory.heapUsed],
    ["comet_heap_total_bytes", "V8 heap reserved, in bytes.", memory.heapTotal],
    [
      "comet_external_memory_bytes",
      "Memory outside the V8 heap (buffers), in bytes.",
      memory.external,
    ],
    [
      "process_start_time_seconds",
      "Start time of the process since the epoch.",
      snapshot.startTime,
    ],
    ["comet_uptime_seconds", "Seconds since the process started.", snapshot.uptime],
  ]);

  if (snapshot.workers !== undefined) _workerFamilies(snapshot, family);
  return families.join("\n") + "\n";
}

/** Streams: what the history holds, and gaps the cluster filled. */
function _streamFamilies(
  snapshot: MetricsSnapshot,
  family: (name: string, type: "counter" | "gauge", help: string) => _Family,
  gauges: (rows: [string, string, number][]) => void,
): void {
  const history = snapshot.history;
  if (history !== undefined) {
    gauges([
      ["comet_history_streams", "Streams the history knows the position of.", history.streams],
      [
        "comet_history_entries",
        "Pushes the history keeps for clients that reconnect.",
        history.entries,
      ],
      ["comet_history_bytes", "Bytes of the pushes the history keeps.", history.bytes],
    ]);
    if (history.held !== undefined) {
      gauges([[
        "comet_history_held_bytes",
        "What the history counts against --history-memory: pushes, stream names and bookkeeping.",
        history.held,
      ]]);
    }
    if (history.evictedPushes !== undefined) {
      const f = family(
        "comet_history_evicted_total",
        "counter",
        "Pushes dropped before their ttl, and stream positions forgotten, to keep the history under --history-memory.",
      );
      f.sample(history.evictedPushes, { what: "pushes" });
      f.sample(history.evictedStreams ?? 0, { what: "streams" });
    }
  }
  if (snapshot.gapsFilled !== undefined) {
    family(
      "comet_history_gaps_filled_total",
      "counter",
      "Pushes fetched from the shared history to fill gaps this node noticed.",
    ).sample(snapshot.gapsFilled);
  }
}

/** The per-worker series of a process-wide snapshot, each labelled `worker`. */
function _workerFamilies(
  snapshot: MetricsSnapshot,
  family: (name: string, type: "counter" | "gauge", help: string) => _Family,
): void {
  const workers = snapshot.workers ?? [];
  family("comet_workers", "gauge", "Workers that answered this scrape.").sample(workers.length);
  family("comet_workers_missing", "gauge", "Workers that did not answer this scrape in time.")
    .sample(snapshot.missingWorkers?.length ?? 0);
  const rows: [string, string, (w: WorkerFigures) => number][] = [
    ["comet_worker_connections", "Authenticated connections per worker.", (w) => w.connections],
    [
      "comet_worker_handshaking",
      "Connections in their handshake per worker.",
      (w) => w.handshaking,
    ],
    [
      "comet_worker_queue_depth",
      "Frames waiting in connection queues per worker.",
      (w) => w.queueDepth,
    ],
    ["comet_worker_heap_used_bytes", "V8 heap in use per worker, in bytes.", (w) => w.heapUsed],
  ];
  for (const [name, help, pick] of rows) {
    const f = family(name, "gauge", help);
    for (const w of workers) f.sample(pick(w), { worker: String(w.worker) });
  }
}
