/**
 * Rejected with when there is no usable connection to Redis: connecting
 * failed, the client is reconnecting or closed when a command is issued, the
 * connection dropped with the command in flight, or Redis sent a malformed
 * reply (the cause is then a {@linkcode ProtocolError}). A command that
 * fails this way may or may not have run on the server.
 *
 * @example
 * ```ts ignore
 * import { RedisClient, RedisConnectionError } from "./redis_client.ts";
 *
 * await using redis = await RedisClient.connect("redis://127.0.0.1:6379");
 * try {
 *   await redis.command("INCR", "hits");
 * } catch (err) {
 *   if (!(err instanceof RedisConnectionError)) throw err;
 *   // Redis is away; the client is already reconnecting.
 * }
 * ```
 */
export class RedisConnectionError extends Error {
  /** Creates the error with a sentence-case message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RedisConnectionError";
  }
}
