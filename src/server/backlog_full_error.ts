/**
 * Thrown by the hub's push methods when queuing a push would pass a cap on
 * bytes waiting to be written (see {@linkcode Backlog}). Nothing was queued:
 * the caller may retry later. The push API answers it with HTTP 429 and
 * `Retry-After`.
 *
 * @example
 * ```ts
 * import { BacklogFullError } from "./backlog_full_error.ts";
 *
 * const err = new BacklogFullError("Room backlog is full: live://1", "room");
 * console.log(err.name, err.scope, err.retryAfter); // "BacklogFullError" "room" 1
 * ```
 */
export class BacklogFullError extends Error {
  /** Which cap refused it: one room's log, or the whole hub's backlog. */
  readonly scope: "room" | "server";
  /** Seconds after which a retry may succeed. */
  readonly retryAfter: number;

  /** Creates the error; `message` says which cap and by how much. */
  constructor(message: string, scope: "room" | "server", retryAfter = 1) {
    super(message);
    this.name = "BacklogFullError";
    this.scope = scope;
    this.retryAfter = retryAfter;
  }
}
