/**
 * Thrown when bytes from a peer break the wire protocol: a bad header, a body
 * over the limit, a malformed handshake. The connection that sent them is
 * closed; no other connection is affected.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./protocol_error.ts";
 * const err = new ProtocolError("Header length is not 16: 12");
 * console.log(err.name); // "ProtocolError"
 * ```
 */
export class ProtocolError extends Error {
  /** Creates a protocol error with a sentence-case message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}
