/**
 * Why a worker could not learn where a stream stands from the worker that
 * owns it (`--workers N`): the owner is not running (not started yet, died,
 * restarting), left while asked, did not answer within the bus's answer
 * timeout, or failed to answer. The hub treats the join as it would any
 * history that cannot answer; nothing about the stream is presumed.
 *
 * @example
 * ```ts
 * import { OwnerUnavailableError } from "./bus_owner_unavailable_error.ts";
 *
 * const err = new OwnerUnavailableError("Stream owner did not answer in 3000 ms: worker 1");
 * console.log(err.name); // "OwnerUnavailableError"
 * ```
 */
export class OwnerUnavailableError extends Error {
  /** Creates the error; the message names the owner and what happened. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "OwnerUnavailableError";
  }
}
