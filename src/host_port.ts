/**
 * One spelling of a socket address for logs, errors and URLs, shared by the
 * transports, the API and the Redis client.
 *
 * @module
 */

/**
 * `host:port`, with an IPv6 host in brackets (once, if it has them already),
 * as a person would write the address on the command line or in a URL.
 *
 * @example
 * ```ts
 * import { hostPort } from "./host_port.ts";
 * console.log(hostPort("::1", 3101), hostPort("127.0.0.1", 3101)); // [::1]:3101 127.0.0.1:3101
 * ```
 */
export function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") && !hostname.startsWith("[")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}
