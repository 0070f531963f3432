/**
 * What the parts of a {@linkcode RedisCluster} share: the command
 * connection, the key names, this node's id, the counters and the logger.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { type RedisClient, RedisConnectionError } from "./redis_client.ts";
import type { RedisKeys } from "./redis_keys.ts";
import type { RedisArg } from "./resp.ts";

/**
 * Counters of what a {@linkcode RedisCluster} did since it started.
 *
 * @example
 * ```ts
 * import type { RedisCluster } from "./redis_cluster.ts";
 * import type { RedisClusterStats } from "./redis_link.ts";
 *
 * function failedCommands(cluster: RedisCluster): number {
 *   const stats: Readonly<RedisClusterStats> = cluster.stats;
 *   return stats.failed;
 * }
 * ```
 */
export interface RedisClusterStats {
  /** Envelopes published for other nodes (one per node, or one for `all`). */
  sent: number;
  /** Envelopes from other nodes delivered to this node's connections. */
  received: number;
  /** Redis commands that failed: Redis unreachable or refusing. */
  failed: number;
  /** Times the node re-registered its sessions and rooms after losing Redis. */
  catchUps: number;
}

/**
 * This node's side of Redis: sends commands whose failures are counted and
 * logged rather than thrown, and says whether pushes are to be routed now.
 *
 * @example
 * ```ts ignore
 * import { RedisClient } from "./redis_client.ts";
 * import { RedisKeys } from "./redis_keys.ts";
 * import { RedisLink } from "./redis_link.ts";
 * import { silentLogger } from "../log.ts";
 *
 * const client = new RedisClient("redis://127.0.0.1:6379");
 * const link = new RedisLink(client, new RedisKeys("comet:"), "n1", silentLogger);
 * void link.fire(["SADD", link.keys.room("live://1"), link.nodeId]);
 * ```
 */
export class RedisLink {
  /** The connection commands and publishes go through. */
  readonly client: RedisClient;
  /** The names of the cluster's keys and channels. */
  readonly keys: RedisKeys;
  /** This node's id. */
  readonly nodeId: string;
  /** Counters since start; the parts add to them. */
  readonly stats: RedisClusterStats = { sent: 0, received: 0, failed: 0, catchUps: 0 };
  /** Where the parts log; the cluster swaps in the hub's when it has none of its own. */
  logger: Logger;
  #stopped = false;

  /**
   * @param client The command connection.
   * @param keys The cluster's key names.
   * @param nodeId This node's id.
   * @param logger Where the parts log.
   */
  constructor(client: RedisClient, keys: RedisKeys, nodeId: string, logger: Logger) {
    this.client = client;
    this.keys = keys;
    this.nodeId = nodeId;
    this.logger = logger;
  }

  /** Whether the command connection is up; while it is not, registry writes wait for the catch-up. */
  get connected(): boolean {
    return this.client.state === "ready";
  }

  /** Whether pushes go to the other nodes now: Redis is up and the cluster is not leaving. */
  get routing(): boolean {
    return this.client.state === "ready" && !this.#stopped;
  }

  /** Stops routing for good: the cluster is leaving. */
  stop(): void {
    this.#stopped = true;
  }

  /** Sends a command whose reply nobody needs; a failure is counted, not thrown. */
  fire(args: RedisArg[]): Promise<unknown> {
    return this.client.command(...args).catch(this.failed);
  }

  /** Counts and logs a failed command. */
  failed = (err: unknown): void => {
    this.stats.failed++;
    // Expected while Redis is away; anything else is worth a warning.
    if (err instanceof RedisConnectionError) {
      this.logger.debug("Redis command failed", { error: err });
    } else this.logger.warn("Redis command failed", { error: err });
  };
}
