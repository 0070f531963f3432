/**
 * Thrown (or rejected with) when a {@linkcode Client} has no usable
 * connection: a request was in flight when the connection dropped, the client
 * was reconnecting or closed when the call was made, or connecting failed.
 * The message says which, after a colon where there is detail.
 *
 * @example
 * ```ts ignore
 * import { ConnectionClosedError, connect } from "../../mod.ts";
 *
 * const client = await connect("tcp://127.0.0.1:3101", { mid: 1 });
 * try {
 *   await client.request("hello");
 * } catch (err) {
 *   if (!(err instanceof ConnectionClosedError)) throw err;
 *   // Safe to retry once the client is open again.
 * }
 * ```
 */
export class ConnectionClosedError extends Error {
  /** Creates the error with a sentence-case message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionClosedError";
  }
}
