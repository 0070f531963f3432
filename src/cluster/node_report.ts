/**
 * What each node of a {@linkcode RedisCluster} writes to Redis every report
 * interval: its address, connection figures and per-room counts, as JSON.
 * The other nodes merge these into the cluster-wide counts.
 *
 * @module
 */
import type { ClusterNode } from "./cluster.ts";

/** One node's report: where clients reach it, and what it holds. */
export interface NodeReport extends ClusterNode {
  /** Members per room on the node. */
  rooms: ReadonlyMap<string, number>;
}

/**
 * Encodes a report as JSON, short keys to keep big room tables small.
 *
 * @example
 * ```ts
 * import { encodeReport, parseReport } from "./node_report.ts";
 * const json = encodeReport({
 *   id: "n1", host: "10.0.0.1", tcpPort: 3101, wsPort: 3102, wssPort: 0,
 *   connections: 2, ipCount: 1, updated: 0, rooms: new Map([["live://1", 2]]),
 * });
 * console.log(parseReport(json)?.rooms.get("live://1")); // 2
 * ```
 */
export function encodeReport(report: NodeReport): string {
  return JSON.stringify({
    id: report.id,
    host: report.host,
    tcp: report.tcpPort,
    ws: report.wsPort,
    wss: report.wssPort,
    conns: report.connections,
    ips: report.ipCount,
    updated: report.updated,
    v: report.version,
    rooms: Object.fromEntries(report.rooms),
  });
}

function _count(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? value as number : undefined;
}

/**
 * Parses what {@linkcode encodeReport} made.
 *
 * @returns The report, or undefined when the text is not a well-formed one
 * (another version of Comet, or not Comet at all).
 *
 * @example
 * ```ts
 * import { parseReport } from "./node_report.ts";
 * console.log(parseReport("not json")); // undefined
 * ```
 */
export function parseReport(text: string): NodeReport | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null) return undefined;
  const { id, host, rooms, v } = raw;
  const tcpPort = _count(raw.tcp);
  const wsPort = _count(raw.ws);
  const wssPort = _count(raw.wss);
  const connections = _count(raw.conns);
  const ipCount = _count(raw.ips);
  const updated = _count(raw.updated);
  if (
    typeof id !== "string" || typeof host !== "string" || tcpPort === undefined ||
    wsPort === undefined || wssPort === undefined || connections === undefined ||
    ipCount === undefined || updated === undefined || typeof rooms !== "object" ||
    rooms === null || Array.isArray(rooms)
  ) {
    return undefined;
  }
  const counts = new Map<string, number>();
  for (const [room, value] of Object.entries(rooms)) {
    const n = _count(value);
    if (n === undefined) return undefined;
    if (n > 0) counts.set(room, n);
  }
  const report: NodeReport = {
    id,
    host,
    tcpPort,
    wsPort,
    wssPort,
    connections,
    ipCount,
    updated,
    rooms: counts,
  };
  // A report from a node older than versions has none; any other shape is not Comet's.
  if (typeof v === "string") report.version = v;
  else if (v !== undefined) return undefined;
  return report;
}
