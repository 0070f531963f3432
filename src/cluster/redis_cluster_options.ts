/**
 * The options of a {@linkcode RedisCluster}, and their checks.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { ReconnectOptions } from "../reconnect/backoff.ts";
import type { RedisClientOptions } from "./redis_client.ts";
import { DEFAULT_REPORT_INTERVAL } from "./report_exchange.ts";

/**
 * Options for {@linkcode RedisCluster}. Durations are in milliseconds.
 *
 * @example
 * ```ts
 * import type { RedisClusterOptions } from "./redis_cluster_options.ts";
 *
 * const options: RedisClusterOptions = {
 *   nodeId: "comet-1",
 *   prefix: "chat:",
 *   reportInterval: 2_000,
 *   reconnect: { initialDelay: 200, maxDelay: 5_000 },
 * };
 * ```
 */
export interface RedisClusterOptions {
  /**
   * This node's id, unique in the cluster: letters, digits, `.`, `_` and
   * `-`, at most 64. Default: a random UUID. A node restarted under the same
   * id takes over what the registry still says its predecessor held.
   */
  nodeId?: string;
  /** Prefix of every Redis key and pub/sub channel. Default `comet:`. */
  prefix?: string;
  /**
   * How long a session stays in the registry without a heartbeat renewing
   * it. Heartbeats renew it at most once per a third of it. Default: twice
   * the hub's heartbeat timeout; shorter than 1.5 times that, idle but live
   * connections may drop out of the registry (a warning says so).
   */
  sessionTtl?: number;
  /**
   * How often the node reports its counts and reads everyone else's. A node
   * silent for three intervals drops out of the counts and the node list.
   * Default 5 000.
   */
  reportInterval?: number;
  /** Backoff between reconnection attempts; see {@linkcode RedisClientOptions}. */
  reconnect?: ReconnectOptions;
  /** How long one connection attempt may take. Default 10 000. */
  connectTimeout?: number;
  /** Extra PEM root certificates to trust for `rediss://`. */
  caCerts?: string[];
  /** Where log lines go. Default: the hub's logger once attached. */
  logger?: Logger;
  /** Aborting closes the cluster as {@linkcode RedisCluster.close} does. */
  signal?: AbortSignal;
}

/** {@linkcode RedisClusterOptions} checked, with their defaults filled in. */
export interface CheckedClusterOptions {
  /** This node's id. */
  nodeId: string;
  /** Prefix of every Redis key and pub/sub channel. */
  prefix: string;
  /** How often the node reports, in milliseconds. */
  reportInterval: number;
  /** The session TTL in milliseconds; undefined until the hub's heartbeat timeout gives it. */
  sessionTtl: number | undefined;
  /** What both Redis connections are opened with. */
  redis: RedisClientOptions;
}

const _ID = /^[A-Za-z0-9._-]{1,64}$/;

function _positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number: ${value}`);
  }
  return value;
}

/**
 * Checks a cluster's options and fills in the defaults.
 *
 * @throws {TypeError} When the node id or the prefix is unusable.
 * @throws {RangeError} When a duration is not positive.
 *
 * @example
 * ```ts
 * import { checkClusterOptions } from "./redis_cluster_options.ts";
 * const { nodeId, prefix, reportInterval } = checkClusterOptions({ nodeId: "n1" });
 * console.log(nodeId, prefix, reportInterval); // n1 comet: 5000
 * ```
 */
export function checkClusterOptions(options: RedisClusterOptions): CheckedClusterOptions {
  const nodeId = options.nodeId ?? crypto.randomUUID();
  if (typeof nodeId !== "string" || !_ID.test(nodeId)) {
    throw new TypeError(
      `Node id must be 1 to 64 letters, digits, dots, underscores or dashes: ${String(nodeId)}`,
    );
  }
  const prefix = options.prefix ?? "comet:";
  if (typeof prefix !== "string") throw new TypeError("Key prefix must be a string");
  const reportInterval = _positive(
    "Report interval",
    options.reportInterval,
    DEFAULT_REPORT_INTERVAL,
  );
  const sessionTtl = options.sessionTtl === undefined
    ? undefined
    : _positive("Session TTL", options.sessionTtl, 0);
  const redis: RedisClientOptions = {};
  if (options.reconnect !== undefined) redis.reconnect = options.reconnect;
  if (options.connectTimeout !== undefined) redis.connectTimeout = options.connectTimeout;
  if (options.caCerts !== undefined) redis.caCerts = options.caCerts;
  return { nodeId, prefix, reportInterval, sessionTtl, redis };
}
