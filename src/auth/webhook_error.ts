/**
 * The two ways a `WebhookOperator` fails a connection, and why
 * they are two classes.
 *
 * The hub counts a failed auth against the client's IP address (see
 * `maxAuthAttempts`) unless the error is an
 * {@linkcode OperatorUnavailableError}: the client did nothing wrong when
 * the auth service is down, busy, slow or broken. So a webhook failure
 * must say which it is by its class, not only by a field the hub would
 * have to know about:
 *
 * - {@linkcode WebhookError}: the application answered and refused
 *   (`reason` `"refused"`). It extends `Error` and counts.
 * - {@linkcode WebhookUnavailableError}: the application could not be
 *   asked or gave no usable answer (`busy`, `timeout`, `unavailable`,
 *   `bad_answer`, `closed`). It extends {@linkcode OperatorUnavailableError}
 *   and does not count.
 *
 * One class for both cannot extend `OperatorUnavailableError` for some
 * reasons and not for others, so `instanceof WebhookError` no longer holds
 * for every webhook failure; both carry `reason`, and
 * {@linkcode WebhookFailure} names either. The messages (what the client sees after
 * `auth failed: `) are the same whichever class carries them.
 *
 * @module
 */
import { OperatorUnavailableError } from "../server/operator_unavailable_error.ts";

/**
 * Why a `WebhookOperator` could not get an answer it may act on.
 *
 * @example
 * ```ts
 * import type { WebhookUnavailableReason } from "./webhook_error.ts";
 *
 * const transient: WebhookUnavailableReason[] = ["busy", "timeout", "unavailable"];
 * ```
 */
export type WebhookUnavailableReason =
  | "busy"
  | "timeout"
  | "unavailable"
  | "bad_answer"
  | "closed";

/**
 * Why a `WebhookOperator` failed a connection.
 *
 * @example
 * ```ts
 * import { WebhookError, type WebhookErrorReason } from "./webhook_error.ts";
 *
 * const failures = new Map<WebhookErrorReason, number>();
 * const err = new WebhookError("refused", "banned");
 * failures.set(err.reason, (failures.get(err.reason) ?? 0) + 1);
 * ```
 */
export type WebhookErrorReason = "refused" | WebhookUnavailableReason;

/**
 * Thrown by `WebhookOperator.connect` when the application
 * refused the connection: its answer said `error`, or it answered 4xx. The
 * message is what the client sees after `auth failed: `. Failures of the
 * auth service itself are {@linkcode WebhookUnavailableError}s.
 *
 * The constructor takes any {@linkcode WebhookErrorReason} so that code
 * written before the two classes still builds; an error made here counts
 * as a refusal whatever its reason: for the others, build a
 * {@linkcode WebhookUnavailableError}.
 *
 * @example
 * ```ts
 * import { WebhookError } from "./webhook_error.ts";
 * const err = new WebhookError("refused", "banned");
 * console.log(err.reason, err.message); // "refused" "banned"
 * ```
 */
export class WebhookError extends Error {
  /** Which case failed the connection; `"refused"` when the operator throws it. */
  readonly reason: WebhookErrorReason;

  /** Creates the error with its reason code and the client-facing message. */
  constructor(reason: WebhookErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WebhookError";
    this.reason = reason;
  }
}

/**
 * Thrown by `WebhookOperator.connect` when the auth service could
 * not answer in a way it may act on: too many calls waiting (`busy`), too
 * slow (`timeout`), unreachable or failing with 5xx (`unavailable`), an
 * answer it cannot read (`bad_answer`), or the operator or the connection
 * closed first (`closed`). An {@linkcode OperatorUnavailableError}, so the
 * hub does not count it against the client's IP address.
 *
 * @example
 * ```ts
 * import { WebhookUnavailableError } from "./webhook_error.ts";
 * import { OperatorUnavailableError } from "../server/operator_unavailable_error.ts";
 *
 * const err = new WebhookUnavailableError("busy", "auth service busy");
 * console.log(err.reason, err instanceof OperatorUnavailableError); // "busy" true
 * ```
 */
export class WebhookUnavailableError extends OperatorUnavailableError {
  /** Which case failed the connection. */
  readonly reason: WebhookUnavailableReason;

  /** Creates the error with its reason code and the client-facing message. */
  constructor(reason: WebhookUnavailableReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WebhookUnavailableError";
    this.reason = reason;
  }
}

/**
 * Any failure of a `WebhookOperator`: both carry `reason`.
 *
 * @example
 * ```ts
 * import { WebhookError, type WebhookFailure, WebhookUnavailableError } from "./webhook_error.ts";
 *
 * function describe(err: WebhookFailure): string {
 *   return err instanceof WebhookUnavailableError ? `unavailable: ${err.reason}` : "refused";
 * }
 * console.log(describe(new WebhookError("refused", "banned"))); // refused
 * ```
 */
export type WebhookFailure = WebhookError | WebhookUnavailableError;
