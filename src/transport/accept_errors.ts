import type { Logger } from "../log.ts";

// Process-wide on purpose, as the traffic counters are: the figures describe the
// process's descriptors, which every listener of it shares.
const _counts = new Map<string, Record<string, number>>();

/** How long a listener's accept failures stay quiet in the log after one line about them. */
export const ACCEPT_ERROR_LOG_INTERVAL = 10_000;

/**
 * The label of an accept failure: `emfile` (the process is out of file
 * descriptors), `enfile` (the system is), `enobufs` or `enomem` (out of
 * kernel memory), else `other`.
 *
 * @example
 * ```ts
 * import { acceptErrorKind } from "./accept_errors.ts";
 *
 * const err = Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" });
 * console.log(acceptErrorKind(err)); // "emfile"
 * ```
 */
export function acceptErrorKind(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "EMFILE" || code === "ENFILE" || code === "ENOBUFS" || code === "ENOMEM") {
    return code.toLowerCase();
  }
  const message = err instanceof Error ? err.message : String(err);
  if (message.includes("os error 24")) return "emfile";
  if (message.includes("os error 23")) return "enfile";
  return "other";
}

/**
 * Counts the accept failures of one listener by kind and logs them at most
 * once per interval: out of descriptors, `accept()` fails for every
 * connection waiting in the backlog, and a line per failure would flood
 * the log while telling nothing new. The line after a quiet interval says
 * how many failures it stood for.
 *
 * @example
 * ```ts
 * import { createLogger } from "../log.ts";
 * import { AcceptErrorLog, acceptErrors } from "./accept_errors.ts";
 *
 * const log = new AcceptErrorLog("doc", createLogger({ write() {} }));
 * log.failed(Object.assign(new Error("Too many open files"), { code: "EMFILE" }));
 * console.log(acceptErrors().get("doc")?.emfile); // 1
 * ```
 */
export class AcceptErrorLog {
  /** The listener's name, as the counters and log lines label it (`api`, `tcp`, `ws` ...). */
  readonly listener: string;
  #logger: Logger;
  #interval: number;
  #counts: Record<string, number>;
  #loggedAt = -Infinity;
  #quiet = 0;

  /**
   * Starts counting for `listener`; its `emfile` count is listed at zero from now on.
   *
   * @param listener The listener's name.
   * @param logger Where the rate-limited lines go.
   * @param interval Least time between two lines, in ms. Default {@linkcode ACCEPT_ERROR_LOG_INTERVAL}.
   * @throws {RangeError} When `interval` is negative.
   */
  constructor(listener: string, logger: Logger, interval = ACCEPT_ERROR_LOG_INTERVAL) {
    if (!(interval >= 0)) throw new RangeError(`Log interval must be 0 or more: ${interval}`);
    this.listener = listener;
    this.#logger = logger;
    this.#interval = interval;
    let counts = _counts.get(listener);
    // Listed at zero from the start, so that a rate over it has a series to work on.
    if (counts === undefined) _counts.set(listener, counts = { emfile: 0 });
    this.#counts = counts;
  }

  /** Counts `err`, and logs it unless a line went out less than an interval ago. */
  failed(err: unknown): void {
    const kind = acceptErrorKind(err);
    this.#counts[kind] = (this.#counts[kind] ?? 0) + 1;
    const now = performance.now();
    if (now - this.#loggedAt < this.#interval) {
      this.#quiet++;
      return;
    }
    const failures = this.#quiet + 1;
    this.#loggedAt = now;
    this.#quiet = 0;
    const message = kind === "emfile"
      ? "Accept failed: out of file descriptors; raise ulimit -n or lower the connection limits"
      : "Accept failed";
    this.#logger.warn(message, {
      listener: this.listener,
      error: err,
      kind,
      failures,
    });
  }
}

/**
 * Accept failures so far by listener, then by kind (`emfile`, `enfile`,
 * `other` ...). The records are live; copy them to keep a snapshot.
 *
 * @example
 * ```ts
 * import { acceptErrors } from "./accept_errors.ts";
 *
 * for (const [listener, kinds] of acceptErrors()) console.log(listener, kinds);
 * ```
 */
export function acceptErrors(): ReadonlyMap<string, Readonly<Record<string, number>>> {
  return _counts;
}
