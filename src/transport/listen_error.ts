/**
 * A listener that could not bind because another socket holds its address:
 * the one start failure a person meets first, so it carries what they need
 * to fix it.
 *
 * @module
 */

/**
 * Another socket already holds the address a listener asked for. `listener`
 * names the listener as {@linkcode ../serve.ts}'s `ServerAddrs` does (`tcp`,
 * `ws`, `tcpTls`, `wss`, `pkg`, `api`), where the caller said which it was.
 *
 * @example
 * ```ts
 * import { AddressInUseError } from "./listen_error.ts";
 * const err = new AddressInUseError("127.0.0.1:3101", "tcp");
 * console.log(err.message); // Address is already in use: 127.0.0.1:3101 (tcp)
 * ```
 */
export class AddressInUseError extends Error {
  /** The address as `host:port`, an IPv6 host in brackets. */
  readonly address: string;
  /** Which listener it was, when the caller named it. */
  readonly listener: string | undefined;

  /** Creates the error for `address`; `listener` is the listener's name, if known. */
  constructor(address: string, listener?: string, options?: ErrorOptions) {
    super(
      `Address is already in use: ${address}${listener === undefined ? "" : ` (${listener})`}`,
      options,
    );
    this.name = "AddressInUseError";
    this.address = address;
    this.listener = listener;
  }
}
