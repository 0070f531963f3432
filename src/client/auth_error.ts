/**
 * The server refused to authenticate the client: it answered the auth frame
 * (op 7) with a DisconnectReply (op 6) instead of an AuthReply (op 8). A
 * client never retries after this; `reason` holds the server's text.
 *
 * @example
 * ```ts
 * import { AuthError } from "./auth_error.ts";
 * const err = new AuthError("auth failed: Bad token");
 * console.log(err.message); // "Authentication refused: auth failed: Bad token"
 * console.log(err.reason); // "auth failed: Bad token"
 * ```
 */
export class AuthError extends Error {
  /** The body of the server's DisconnectReply, as text. */
  readonly reason: string;

  /** Creates the error from the server's reason text. */
  constructor(reason: string, options?: ErrorOptions) {
    super(`Authentication refused: ${reason || "no reason given"}`, options);
    this.name = "AuthError";
    this.reason = reason;
  }
}
