/**
 * The options of a `BusCluster`: who this worker is, how it reaches the
 * others, and whether streams are ordered by their owner.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { BusTransport } from "./bus_transport.ts";

/**
 * Options for a `BusCluster`.
 *
 * @example
 * ```ts
 * import type { BusClusterOptions } from "./bus_cluster_options.ts";
 * const options: BusClusterOptions = { workerId: 0, channel: "comet-bus" };
 * console.log(options.workerId); // 0
 * ```
 */
export interface BusClusterOptions {
  /** The node's id in `/goim/nodes/instances`: the process as a whole. Default `"local"`. */
  nodeId?: string;
  /** This worker's number, unique among the workers of the process. */
  workerId: number;
  /**
   * The `BroadcastChannel` name the workers share, when no `transport` is
   * given. Default `"comet-bus"`. This is how isolates that share nothing
   * else meet (the edge entry under `deno serve --parallel`); Deno drops
   * what a receiver has not read past 256 messages, which the bus notices
   * (`lost`) and answers with a resync, but pushes in such a gap are lost.
   */
  channel?: string;
  /**
   * How the workers reach each other instead of a `BroadcastChannel`; the
   * cluster owns it (listens, closes). The `comet --workers N` command
   * passes a lossless `PortMesh` (`bus_port_mesh.ts`) whose ports its
   * supervisor hands out: a `MessagePort` never drops a message, and is
   * faster.
   */
  transport?: BusTransport;
  /**
   * The process's worker count (`--workers N`), with a `transport` that
   * reaches one worker (a `PortMesh`): each stream is then ordered by the
   * worker that owns it (`bus_streams.ts`). Absent, each isolate orders the
   * streams of what it delivers (the edge's lossy channel).
   */
  workers?: number;
  /** How long a worker waits for a stream's owner to answer, in ms. Default 3,000. */
  answerTimeout?: number;
  /** Where the bus logs. Default: the hub's logger once attached. */
  logger?: Logger;
  /** Aborting it closes the cluster. */
  signal?: AbortSignal;
}
