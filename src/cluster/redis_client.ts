/**
 * A small Redis client for clustering Comet nodes: {@linkcode RedisClient}
 * for commands (pipelined) and {@linkcode RedisSubscriber} for pub/sub, both
 * reconnecting by themselves. RESP2 over TCP or TLS, no dependencies.
 *
 * The parts live in their own files (URL, connection, the reconnecting
 * engine, subscriber); this one has the commands and re-exports the rest.
 *
 * @module
 */
import {
  type RedisClientOptions,
  RedisEngine,
  type RedisState,
  type RedisStateChange,
} from "./redis_engine.ts";
import type { RedisArg, RedisReply } from "./resp.ts";

export { RedisConnectionError } from "./redis_connection_error.ts";
export { parseRedisUrl, type RedisEndpoint } from "./redis_url.ts";
export type { RedisClientOptions, RedisState, RedisStateChange } from "./redis_engine.ts";
export { type RedisMessageHandler, RedisSubscriber } from "./redis_subscriber.ts";

/**
 * A Redis connection for commands, pipelined: any number of commands may be
 * in flight, replies are matched to them in order, and commands issued in
 * the same tick go out in one write.
 *
 * The client logs in (`AUTH`) and selects the URL's database on every
 * connection. When the connection drops, commands in flight are rejected
 * with {@linkcode RedisConnectionError} and the client reconnects with
 * exponential backoff and jitter. While it is not `ready` (see
 * {@linkcode RedisState}), commands are not queued: they fail at once with
 * {@linkcode RedisConnectionError}, so callers never wait on an outage and
 * decide themselves whether to retry. Error replies reject with
 * {@linkcode RedisError} and leave the connection as it is.
 *
 * Do not change the connection's state with `SELECT`, `AUTH`, `MULTI`
 * without `EXEC`, blocking commands or `SUBSCRIBE` (use
 * {@linkcode RedisSubscriber}): a reconnect only restores the URL's login and
 * database, and every other command shares the connection.
 *
 * @example
 * ```ts ignore
 * import { RedisClient } from "./redis_client.ts";
 * import { replyText } from "./resp.ts";
 *
 * await using redis = await RedisClient.connect("redis://127.0.0.1:6379/0");
 * redis.onState(({ state }) => console.log("broker", state));
 * await redis.command("SET", "greeting", "hello");
 * console.log(replyText(await redis.command("GET", "greeting"))); // "hello"
 * await redis.publish("comet/room", "hi");
 * ```
 */
export class RedisClient implements AsyncDisposable {
  /**
   * Settles once the first connection is ready. Rejects (and the client
   * closes) when it fails, with {@linkcode RedisConnectionError}, unless
   * `retryFirstConnect` keeps trying; rejects too when the client is closed
   * first.
   */
  readonly ready: Promise<void>;
  #engine: RedisEngine;

  /**
   * Connects and resolves once the connection is logged in and ready.
   *
   * @param url `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS.
   * @param options Reconnection, timeouts, limits, signal.
   * @returns The ready client; close it with `close()` or `await using`.
   * @throws {RedisConnectionError} When Redis cannot be reached, refuses the
   * login, or does not answer within `connectTimeout`.
   * @throws {TypeError} When the URL is unusable.
   * @throws {RangeError} When an option is out of range.
   *
   * @example
   * ```ts ignore
   * import { RedisClient } from "./redis_client.ts";
   * await using redis = await RedisClient.connect("redis://:secret@127.0.0.1:6379/1", {
   *   reconnect: { initialDelay: 50, maxDelay: 2_000 },
   * });
   * console.log(await redis.command("PING")); // "PONG"
   * ```
   */
  static async connect(url: string, options: RedisClientOptions = {}): Promise<RedisClient> {
    const client = new RedisClient(url, options);
    try {
      await client.ready;
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  /**
   * Creates the client and starts connecting in the background: it is
   * `connecting` until {@linkcode RedisClient.ready} settles. Prefer
   * {@linkcode RedisClient.connect}, unless the program should run while
   * Redis is still down (with `retryFirstConnect`).
   *
   * @param url `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS.
   * @param options Reconnection, timeouts, limits, signal.
   * @throws {TypeError} When the URL is unusable.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(url: string, options: RedisClientOptions = {}) {
    this.#engine = new RedisEngine(url, options, {});
    this.ready = this.#engine.ready;
  }

  /** The state now; see {@linkcode RedisState}. */
  get state(): RedisState {
    return this.#engine.state;
  }

  /**
   * Sends one command and resolves with its reply.
   *
   * @param args The command name and its arguments, e.g. `"SET", key, value`.
   * @returns The reply; see {@linkcode RedisReply}.
   * @throws {RedisError} When Redis answers with an error.
   * @throws {RedisConnectionError} When the client is not `ready`, or the
   * connection drops before the reply arrives.
   * @throws {TypeError} When an argument has an unusable type.
   * @throws {RangeError} When there are no arguments or a number is not finite.
   */
  command(...args: RedisArg[]): Promise<RedisReply> {
    return this.#engine.send(args);
  }

  /**
   * Publishes `message` on `channel`.
   *
   * @returns How many subscribers received it (on this Redis node).
   * @throws {RedisConnectionError} As {@linkcode RedisClient.command} does.
   */
  async publish(channel: string | Uint8Array, message: string | Uint8Array): Promise<number> {
    const receivers = await this.#engine.send(["PUBLISH", channel, message]);
    return Number(receivers);
  }

  /** Calls `listener` on every state change. Returns a function that removes it. */
  onState(listener: (change: RedisStateChange) => void): () => void {
    return this.#engine.onState(listener);
  }

  /**
   * Calls `listener` with problems no caller can be told about: failed
   * reconnection attempts and throwing state listeners.
   *
   * @returns A function that removes the listener.
   */
  onError(listener: (error: Error) => void): () => void {
    return this.#engine.onError(listener);
  }

  /**
   * Closes the client for good: stops reconnecting, rejects commands in
   * flight with {@linkcode RedisConnectionError}, closes the connection and
   * settles in state `closed`. Idempotent.
   */
  close(): Promise<void> {
    return this.#engine.close();
  }

  /** Same as {@linkcode RedisClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
