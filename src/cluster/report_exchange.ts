/**
 * The report exchange of a {@linkcode RedisCluster}: every interval this
 * node writes its report to Redis and lists itself, then reads the others'
 * and forgets the nodes gone silent.
 *
 * @module
 */
import type { ClusterHub, NodeAddress } from "./cluster.ts";
import { encodeReport, type NodeReport, parseReport } from "./node_report.ts";
import type { OtherNodes } from "./other_nodes.ts";
import type { RedisLink } from "./redis_link.ts";
import type { RedisReply } from "./resp.ts";
import { strings, text, within } from "./_util.ts";
import { VERSION } from "../version.ts";

/** How often a node reports and reads the others' reports by default, in milliseconds. */
export const DEFAULT_REPORT_INTERVAL = 5_000;

/** What a {@linkcode ReportExchange} works with. */
export interface ReportExchangeOptions {
  /** Commands, key names, node id, counters and logger. */
  link: RedisLink;
  /** The hub whose figures are reported. */
  hub: ClusterHub;
  /** Where clients reach this node. */
  address: NodeAddress;
  /** How often to report, in milliseconds; a report lives three intervals. */
  interval: number;
  /** Where the others' reports go. */
  others: OtherNodes;
  /** Re-registers this node's sessions and rooms; called when Redis lost them. */
  catchUp: () => void;
}

/**
 * Reports this node's figures and reads the others' on a timer; after a
 * reconnect, reports at once and has the sessions registered anew.
 *
 * @example
 * ```ts ignore
 * import { ReportExchange } from "./report_exchange.ts";
 * declare const options: import("./report_exchange.ts").ReportExchangeOptions;
 * const reports = new ReportExchange(options);
 * reports.schedule(0);
 * await reports.stop();
 * ```
 */
export class ReportExchange {
  #link: RedisLink;
  #hub: ClusterHub;
  #address: NodeAddress;
  #interval: number;
  #others: OtherNodes;
  #catchUp: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ticking: Promise<void> | undefined;
  /** Set when Redis came back: the next report also re-registers everything. */
  #mustCatchUp = false;
  #stopped = false;

  /** @param options What the exchange works with. */
  constructor(options: ReportExchangeOptions) {
    this.#link = options.link;
    this.#hub = options.hub;
    this.#address = { ...options.address };
    this.#interval = options.interval;
    this.#others = options.others;
    this.#catchUp = options.catchUp;
  }

  /** This node's report: its address and the hub's figures now. */
  report(): NodeReport {
    const { ipCount, connCount } = this.#hub.onlineTotal();
    return {
      id: this.#link.nodeId,
      ...this.#address,
      connections: connCount,
      ipCount,
      updated: Date.now(),
      version: VERSION,
      rooms: this.#hub.rooms,
    };
  }

  /** Runs the next exchange after `delay` ms, unless one is under way or the exchange stopped. */
  schedule(delay: number): void {
    if (this.#stopped || this.#ticking !== undefined) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#tick, delay);
  }

  /** Redis came back: report now, and register everything anew with it. */
  recover(): void {
    this.#mustCatchUp = true;
    // A report under way ends at once (its commands failed with the connection) and
    // schedules the next one now.
    this.schedule(0);
  }

  /** Schedules nothing more: the cluster is leaving. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The exchange under way, if any; it settles without throwing. */
  settled(): Promise<void> | undefined {
    return this.#ticking;
  }

  #tick = (): void => {
    this.#timer = undefined;
    // A Redis that stops answering without dropping the connection must not stall reports.
    this.#ticking = within(this.#exchange(), this.#interval * 3)
      .catch((err) => this.#link.failed(err))
      .finally(() => {
        this.#ticking = undefined;
        const now = this.#mustCatchUp && this.#link.connected;
        this.schedule(now ? 0 : this.#interval);
      });
  };

  /** Writes this node's report, reads everyone else's, and forgets nodes gone silent. */
  async #exchange(): Promise<void> {
    const link = this.#link;
    if (!link.connected) return;
    const { client, keys, nodeId: id } = link;
    const expiry = Math.ceil(this.#interval * 3);
    // The report goes first: a node that sees this one listed must find its report.
    const [, added, members] = await Promise.all([
      client.command("SET", keys.online(id), encodeReport(this.report()), "PX", expiry),
      client.command("SADD", keys.nodes, id),
      client.command("SMEMBERS", keys.nodes),
    ]);
    const ids = strings(members).filter((node) => node !== id);
    const reports = ids.length === 0
      ? []
      : await client.command("MGET", ...ids.map((node) => keys.online(node))) as RedisReply[];
    const others = new Map<string, NodeReport>();
    for (let i = 0; i < ids.length; i++) {
      const node = ids[i]!;
      const raw = reports[i];
      const report = raw instanceof Uint8Array ? parseReport(text.decode(raw)) : undefined;
      if (report !== undefined) {
        others.set(node, report);
        continue;
      }
      if (raw instanceof Uint8Array) {
        link.logger.warn("Ignored an unreadable node report", { node });
        continue;
      }
      // Silent for three intervals: gone. Its sessions expire with their TTL.
      link.fire(["SREM", keys.nodes, node]);
      for (const room of this.#others.last(node)?.rooms.keys() ?? []) {
        link.fire(["SREM", keys.room(room), node]);
      }
      link.logger.info("Node left the cluster", { node });
    }
    this.#others.update(others);
    // Listed anew: Redis lost this node (restart, flush) or another node gave it up for
    // dead. Or the connection came back: sessions opened or closed meanwhile were missed.
    if (added === 1 || this.#mustCatchUp) {
      this.#mustCatchUp = false;
      this.#catchUp();
    }
  }
}
