/**
 * Rejected with when no reply to a request arrived in time, or when a
 * connection attempt did not open and authenticate in time.
 *
 * @example
 * ```ts ignore
 * import { connect, RequestTimeoutError } from "../../mod.ts";
 *
 * const client = await connect("ws://127.0.0.1:3102/sub", { mid: 1 });
 * try {
 *   await client.request("slow", { timeout: 500 });
 * } catch (err) {
 *   console.log(err instanceof RequestTimeoutError);
 * }
 * ```
 */
export class RequestTimeoutError extends Error {
  /** Creates the error with a sentence-case message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RequestTimeoutError";
  }
}
