/**
 * What the supervisor and its workers tell each other over `postMessage`.
 * Every message is structured-cloneable: plain objects, numbers, strings.
 *
 * @module
 */
import type { CliConfig } from "../cli_config.ts";

/** A listening address as a worker reports it. */
export interface WorkerAddr {
  /** Bound host. */
  hostname: string;
  /** Bound port. */
  port: number;
}

/** What the supervisor tells a worker. */
export type ToWorker =
  /**
   * Serve `config` (its limits already this worker's share) as worker
   * `workerId` of `workers`, joined to the others over the `BroadcastChannel`
   * named `bus` (one name per supervisor, so two in one process stay apart).
   */
  | {
    type: "start";
    config: CliConfig;
    workerId: number;
    workers: number;
    restarts: number;
    bus: string;
  }
  /** The process's worker restarts so far. */
  | { type: "restarts"; count: number }
  /** Report the connections this worker serves. */
  | { type: "stats" }
  /** Drain (op 6 to every client), stop, then answer `stopped`. */
  | { type: "shutdown" }
  /** Throw an uncaught error from a timer: the real crash path, for tests. */
  | { type: "crash" };

/** What a worker tells the supervisor. */
export type FromWorker =
  /** Listening on `addrs`, by listener name. */
  | { type: "ready"; addrs: Record<string, WorkerAddr> }
  /** Could not start: the command prints `comet: message` and exits with `code`. */
  | { type: "failed"; message: string; code: number }
  /** The answer to `stats`. */
  | { type: "stats"; connections: number }
  /** Shut down; the worker closes itself next. */
  | { type: "stopped" };
