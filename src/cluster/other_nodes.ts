/**
 * The other nodes of a {@linkcode RedisCluster} as their last reports show
 * them, merged into the figures the cluster-wide counts add to this node's.
 *
 * @module
 */
import type { NodeReport } from "./node_report.ts";

/**
 * The last reports read from the other nodes and their sums. They count
 * only while fresh: for as long as the nodes' own reports live in Redis.
 *
 * @example
 * ```ts
 * import { OtherNodes } from "./other_nodes.ts";
 *
 * const others = new OtherNodes(5_000);
 * others.update(new Map([["n2", {
 *   id: "n2", host: "10.0.0.2", tcpPort: 3101, wsPort: 3102, wssPort: 0,
 *   connections: 3, ipCount: 2, updated: Date.now(), rooms: new Map([["live://1", 3]]),
 * }]]));
 * console.log(others.roomOnline("live://1"), others.live().size); // 3 1
 * ```
 */
export class OtherNodes {
  #maxAge: number;
  #reports = new Map<string, NodeReport>();
  #rooms = new Map<string, number>();
  #connections = 0;
  #ips = 0;
  #refreshedAt = -Infinity;

  /** @param reportInterval How often the nodes report; three intervals old, the figures lapse. */
  constructor(reportInterval: number) {
    this.#maxAge = reportInterval * 3;
  }

  /** Replaces the reports with those just read, by node id, and sums them. */
  update(reports: Map<string, NodeReport>): void {
    const rooms = new Map<string, number>();
    let connections = 0;
    let ips = 0;
    for (const report of reports.values()) {
      connections += report.connections;
      ips += report.ipCount;
      for (const [room, n] of report.rooms) rooms.set(room, (rooms.get(room) ?? 0) + n);
    }
    this.#reports = reports;
    this.#rooms = rooms;
    this.#connections = connections;
    this.#ips = ips;
    this.#refreshedAt = performance.now();
  }

  /** Whether the reports are recent enough to count: the nodes' own expiry. */
  get fresh(): boolean {
    return performance.now() - this.#refreshedAt < this.#maxAge;
  }

  /** The live nodes' reports by id; none once stale. */
  live(): ReadonlyMap<string, NodeReport> {
    return this.fresh ? this.#reports : new Map();
  }

  /** The last report read from `node`, fresh or not: what it was last seen holding. */
  last(node: string): NodeReport | undefined {
    return this.#reports.get(node);
  }

  /** Members of `room` on the live nodes. */
  roomOnline(room: string): number {
    return this.fresh ? this.#rooms.get(room) ?? 0 : 0;
  }

  /** Members per room on the live nodes; empty once stale. */
  rooms(): ReadonlyMap<string, number> {
    return this.fresh ? this.#rooms : new Map();
  }

  /** Connections on the live nodes. */
  get connections(): number {
    return this.fresh ? this.#connections : 0;
  }

  /** Distinct client IPs on the live nodes (summed per node). */
  get ipCount(): number {
    return this.fresh ? this.#ips : 0;
  }
}
