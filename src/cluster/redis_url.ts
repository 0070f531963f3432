import { hostPort } from "../host_port.ts";

/** Where a Redis URL points and how to log in, from {@linkcode parseRedisUrl}. */
export interface RedisEndpoint {
  /** Host name or IP address, without IPv6 brackets. */
  hostname: string;
  /** TCP port; 6379 unless the URL says otherwise. */
  port: number;
  /** Whether the URL is `rediss://` (TLS). */
  tls: boolean;
  /** Database selected on every connection; 0 unless the URL path says otherwise. */
  db: number;
  /** ACL user name for `AUTH user password`, when the URL has one. */
  username?: string;
  /** Password for `AUTH`, when the URL has one. */
  password?: string;
}

/**
 * Parses `redis://[[user]:password@]host[:port][/db]` (or `rediss://` for
 * TLS). User and password are percent-decoded. `redis://:pw@host` logs in
 * with `AUTH pw`, `redis://user:pw@host` with `AUTH user pw`.
 *
 * @param url The URL.
 * @returns Its parts.
 * @throws {TypeError} When the URL is malformed, not `redis:` or `rediss:`,
 * has no host, a query, a user without a password, or a path that is not a
 * database number.
 *
 * @example
 * ```ts
 * import { parseRedisUrl } from "./redis_url.ts";
 * const endpoint = parseRedisUrl("redis://:s3cret@10.0.0.5:6380/2");
 * console.log(endpoint.hostname, endpoint.port, endpoint.db); // "10.0.0.5" 6380 2
 * ```
 */
export function parseRedisUrl(url: string | URL): RedisEndpoint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The text may hold a password, so it stays out of the message.
    throw new TypeError("Redis URL is not a valid URL");
  }
  const where = `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new TypeError(`Redis URL must start with redis:// or rediss://: ${where}`);
  }
  if (parsed.hostname === "") throw new TypeError(`Redis URL has no host: ${where}`);
  if (parsed.search !== "" || parsed.hash !== "") {
    throw new TypeError(`Redis URL takes no query or fragment: ${where}`);
  }
  const path = /^\/?(\d*)$/.exec(parsed.pathname);
  if (path === null) throw new TypeError(`Redis URL path must be a database number: ${where}`);
  const db = path[1] ? Number(path[1]) : 0;
  if (!Number.isSafeInteger(db)) {
    throw new TypeError(`Redis URL path must be a database number: ${where}`);
  }
  const hostname = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  const endpoint: RedisEndpoint = {
    hostname,
    port: parsed.port ? Number(parsed.port) : 6379,
    tls: parsed.protocol === "rediss:",
    db,
  };
  let username: string;
  let password: string;
  try {
    username = decodeURIComponent(parsed.username);
    password = decodeURIComponent(parsed.password);
  } catch {
    throw new TypeError(`Redis URL has a badly percent-encoded user or password: ${where}`);
  }
  if (password !== "") {
    endpoint.password = password;
    if (username !== "") endpoint.username = username;
  } else if (username !== "") {
    throw new TypeError(`Redis URL has a user but no password: ${where}`);
  }
  return endpoint;
}

/**
 * `host:port` of an endpoint for messages, with IPv6 hosts in brackets.
 *
 * @example
 * ```ts
 * import { parseRedisUrl, redisAddress } from "./redis_url.ts";
 * console.log(redisAddress(parseRedisUrl("redis://[::1]:6380"))); // "[::1]:6380"
 * ```
 */
export function redisAddress(endpoint: RedisEndpoint): string {
  return hostPort(endpoint.hostname, endpoint.port);
}
