// deno-lint-ignore no-unused-vars
import type { Operator } from "./operator.ts";

/**
 * Thrown by an {@linkcode Operator} that could not answer: its auth service
 * is down, busy or too slow. The hub closes the connection as for any failed
 * auth, but does not count it against the client's IP address: the client
 * did nothing wrong, so `maxAuthAttempts` must not bar it.
 *
 * Any other error an operator throws from `connect` is a refusal and counts.
 *
 * @example
 * ```ts
 * import { OperatorUnavailableError } from "./operator_unavailable_error.ts";
 *
 * const err = new OperatorUnavailableError("Auth service unavailable: timed out");
 * console.log(err.name); // "OperatorUnavailableError"
 * ```
 */
export class OperatorUnavailableError extends Error {
  /** Creates the error with the client-facing message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "OperatorUnavailableError";
  }
}
