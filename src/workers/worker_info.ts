/**
 * What an isolate knows of the workers of its process: which one it is, how
 * many there are and how often the supervisor has restarted one. The
 * supervisor posts the restart count to every worker whenever it changes,
 * so `/metrics` on any worker can report `comet_worker_restarts_total` for
 * the process (the same figure on every worker: read it, do not sum it).
 * Outside workers (`--workers 1`, a library user) it stays at its start:
 * worker 0 of 1, no restarts.
 *
 * @module
 */

/** The figures {@linkcode workerInfo} returns. */
export interface WorkerInfo {
  /** This isolate's worker id, 0 to `workers - 1`. */
  readonly workerId: number;
  /** Workers the process runs. */
  readonly workers: number;
  /** Workers the supervisor has restarted since the process started. */
  readonly restarts: number;
}

let _info: WorkerInfo = { workerId: 0, workers: 1, restarts: 0 };

/**
 * This isolate's place among the workers of its process.
 *
 * @example
 * ```ts
 * import { workerInfo } from "./worker_info.ts";
 * console.log(workerInfo().restarts); // 0 outside a worker
 * ```
 */
export function workerInfo(): WorkerInfo {
  return _info;
}

/** @internal Records what the supervisor said; only the worker entry calls it. */
export function setWorkerInfo(info: Partial<WorkerInfo>): void {
  _info = { ..._info, ...info };
}
