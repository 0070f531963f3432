/**
 * What the supervisor and its workers tell each other over `postMessage`.
 * Every message is structured-cloneable: plain objects, numbers, strings,
 * and `MessagePort`s, which travel in the transfer list.
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

/** One end of the `MessageChannel` between two workers, and who is at the other end. */
export interface PeerPort {
  /** The worker at the other end. */
  workerId: number;
  /** This worker's end. */
  port: MessagePort;
}

/** What the supervisor tells a worker. */
export type ToWorker =
  /**
   * Serve `config` (its limits already this worker's share) as worker
   * `workerId` of `workers`, joined to the others through `peers`: a port
   * to each worker started before it (none with `--redis`).
   */
  | {
    type: "start";
    config: CliConfig;
    workerId: number;
    workers: number;
    restarts: number;
    peers: PeerPort[];
  }
  /** A port to worker `workerId`, (re)started after this one: adopt it for the bus. */
  | { type: "peer"; workerId: number; port: MessagePort }
  /** Worker `workerId` died: drop its port, and its figures with it. */
  | { type: "peerGone"; workerId: number }
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
