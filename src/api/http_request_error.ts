/**
 * @internal A request the push API's HTTP server refuses itself, before any
 * handler: a malformed or oversized head, a body that ends early or comes
 * late. It is answered with `status` and the message, then the connection
 * closes.
 *
 * @example
 * ```ts
 * import { HttpRequestError } from "./http_request_error.ts";
 * const err = new HttpRequestError(431, "Request headers too large");
 * console.log(err.status); // 431
 * ```
 */
export class HttpRequestError extends Error {
  /** The status the server answers with. */
  readonly status: number;

  /** Creates the error with the status and the message the client is answered. */
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpRequestError";
    this.status = status;
  }
}
