/**
 * The reconnecting Redis connection that {@linkcode RedisClient} and
 * {@linkcode RedisSubscriber} both stand on: it connects, logs in (`AUTH`,
 * `SELECT`), lets its owner restore state, and reconnects through the shared
 * {@linkcode Reconnector}.
 *
 * @module
 */
import { type ReconnectOptions, reconnectPolicy } from "../reconnect/backoff.ts";
import { Reconnector } from "../reconnect/reconnector.ts";
import {
  openRedisConnection,
  type RedisConnection,
  type RedisPushHandler,
} from "./redis_connection.ts";
import { RedisConnectionError } from "./redis_connection_error.ts";
import { parseRedisUrl, redisAddress, type RedisEndpoint } from "./redis_url.ts";
import {
  type RedisArg,
  RedisError,
  type RedisReply,
  RespParser,
  type RespParserOptions,
} from "./resp.ts";

/**
 * Where a {@linkcode RedisClient} or {@linkcode RedisSubscriber} stands:
 * `connecting` until the first connection is ready, `ready` while commands
 * can be sent, `reconnecting` between a dropped connection and the next
 * ready one, `closed` for good. Only `ready` accepts commands.
 */
export type RedisState = "connecting" | "ready" | "reconnecting" | "closed";

/** What `onState` listeners get. */
export interface RedisStateChange {
  /** The new state. */
  state: RedisState;
  /** The state before. */
  previous: RedisState;
  /** Why the connection was lost or the client closed, where there was a reason. */
  reason?: Error;
}

/**
 * Options for {@linkcode RedisClient} and {@linkcode RedisSubscriber}.
 * Durations are in milliseconds.
 */
export interface RedisClientOptions extends RespParserOptions {
  /**
   * Backoff between reconnection attempts after a drop; `false` closes
   * instead of reconnecting. Default: from 100 ms, doubling up to 10 000,
   * half of each delay random.
   */
  reconnect?: false | ReconnectOptions;
  /**
   * When the first connection fails, keep trying with the reconnect backoff
   * (failures go to `onError`) instead of failing: `connect()` then resolves
   * only once Redis answers, and a client made with `new` stays
   * `connecting` until then. Default `false`: the first failure rejects
   * `connect()` and `ready`, and closes the client.
   */
  retryFirstConnect?: boolean;
  /** How long one attempt may take to connect, log in and select the database. Default 10 000. */
  connectTimeout?: number;
  /** Extra PEM root certificates to trust for `rediss://`. */
  caCerts?: string[];
  /** Aborting closes the client as `close()` does. */
  signal?: AbortSignal;
}
/** What the owner of a {@linkcode RedisEngine} adds to its connections. */
export interface RedisEngineHooks {
  /** Picks pub/sub messages out of the replies. */
  onPush?: RedisPushHandler;
  /** Extra commands for a new connection (re-subscribing), run after the login. */
  restore?: (session: RedisConnection) => Promise<void>;
  /** Called once a new connection is the current one. */
  ready?: (session: RedisConnection) => void;
}

/**
 * One Redis connection at a time, logged in and kept up: connect, log in,
 * reconnect and close, shared by {@linkcode RedisClient} and
 * {@linkcode RedisSubscriber}.
 *
 * @example
 * ```ts ignore
 * import { RedisEngine } from "./redis_engine.ts";
 *
 * const engine = new RedisEngine("redis://127.0.0.1:6379", {}, {});
 * await engine.ready;
 * console.log(await engine.send(["PING"])); // "PONG"
 * await engine.close();
 * ```
 */
export class RedisEngine {
  /** Where it connects. */
  readonly endpoint: RedisEndpoint;
  /** `host:port`, for messages. */
  readonly address: string;
  /** As {@linkcode RedisClient.ready}. */
  readonly ready: Promise<void>;
  /** The connection that is up, if any. */
  session: RedisConnection | undefined;
  #hooks: RedisEngineHooks;
  #parser: RespParserOptions;
  #caCerts: string[] | undefined;
  #life: Reconnector<RedisConnection, "ready">;

  /**
   * Checks the options and starts connecting in the background.
   *
   * @throws {TypeError} When the URL is unusable.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(url: string, options: RedisClientOptions, hooks: RedisEngineHooks) {
    this.endpoint = parseRedisUrl(url);
    this.address = redisAddress(this.endpoint);
    this.#hooks = hooks;
    this.#parser = {};
    if (options.maxBulkLength !== undefined) this.#parser.maxBulkLength = options.maxBulkLength;
    if (options.maxLineLength !== undefined) this.#parser.maxLineLength = options.maxLineLength;
    new RespParser(this.#parser); // Checks the limits now rather than on every connect.
    let policy: Required<ReconnectOptions> | false = false;
    if (options.reconnect !== false) {
      const given = options.reconnect ?? {};
      const maxDelay = given.maxDelay ?? 10_000;
      // The default first delay must not trip over a smaller maxDelay of the caller's.
      const initialDelay = maxDelay >= 0 ? Math.min(100, maxDelay) : 100;
      policy = reconnectPolicy({ initialDelay, maxDelay, ...given });
    }
    this.#caCerts = options.caCerts;
    this.#life = new Reconnector({
      upState: "ready",
      policy,
      connectTimeout: options.connectTimeout ?? 10_000,
      retryFirst: options.retryFirstConnect ?? false,
      // Commands issued once close() is called must hear "closed" at once.
      closedFirst: true,
      ...(options.signal && { signal: options.signal }),
      connect: (signal) => this.#connect(signal),
      attach: (session) => {
        this.session = session;
      },
      onUp: (session) => this.#hooks.ready?.(session),
      onDown: (session) => {
        if (this.session === session) this.session = undefined;
        return session.finished();
      },
      teardown: async (reason, stopped) => {
        const session = this.session;
        this.session = undefined;
        session?.close(reason);
        await stopped;
        await session?.finished();
      },
      timedOut: (ms) =>
        new RedisConnectionError(
          `Connecting to Redis timed out: ${this.address} was not ready within ${ms} ms`,
        ),
      gaveUp: (attempts, last) =>
        new RedisConnectionError(
          `Reconnecting to Redis gave up after ${attempts} attempts: ${last.message}`,
          { cause: last },
        ),
      aborted: (cause) => ({
        reason: new RedisConnectionError("Redis client closed: the signal was aborted", { cause }),
      }),
    });
    this.ready = this.#life.ready;
    this.#life.start();
  }

  /** The state now; see {@linkcode RedisState}. */
  get state(): RedisState {
    return this.#life.state;
  }

  /** As {@linkcode RedisClient.onState}. */
  onState(listener: (change: RedisStateChange) => void): () => void {
    if (typeof listener !== "function") throw new TypeError("State listener must be a function");
    return this.#life.onState(listener);
  }

  /** As {@linkcode RedisClient.onError}. */
  onError(listener: (error: Error) => void): () => void {
    if (typeof listener !== "function") throw new TypeError("Error listener must be a function");
    return this.#life.onError(listener);
  }

  /** Hands `error` to the error listeners. */
  report(error: Error): void {
    this.#life.report(error);
  }

  /** The current connection, or the error to fail a command with right away. */
  current(): RedisConnection | RedisConnectionError {
    const state = this.#life.state;
    if (state === "ready" && this.session !== undefined) return this.session;
    switch (state) {
      case "closed":
        return new RedisConnectionError("Redis client is closed");
      case "connecting":
        return new RedisConnectionError(
          `Redis is not connected yet: connecting to ${this.address}`,
        );
      default:
        return new RedisConnectionError(`Redis is not connected: reconnecting to ${this.address}`);
    }
  }

  /** Sends one command on the current connection, or fails at once without one. */
  send(args: readonly RedisArg[]): Promise<RedisReply> {
    const session = this.current();
    if (session instanceof RedisConnectionError) return Promise.reject(session);
    return session.send(args);
  }

  /** As {@linkcode RedisClient.close}. */
  close(): Promise<void> {
    return this.#life.close(new RedisConnectionError("Redis client closed"));
  }

  /** One attempt: connects, logs in, selects the database and lets the hooks restore state. */
  async #connect(signal: AbortSignal): Promise<RedisConnection> {
    const { username, password, db } = this.endpoint;
    let session: RedisConnection | undefined;
    const cancel = () => session?.close(signal.reason);
    try {
      session = await openRedisConnection(this.endpoint, {
        parser: this.#parser,
        ...(this.#caCerts && { caCerts: this.#caCerts }),
        ...(this.#hooks.onPush && { onPush: this.#hooks.onPush }),
      }, signal);
      if (signal.aborted) cancel();
      else signal.addEventListener("abort", cancel, { once: true });
      const login: Promise<RedisReply>[] = [];
      if (password !== undefined) {
        login.push(session.send(username ? ["AUTH", username, password] : ["AUTH", password]));
      }
      if (db !== 0) login.push(session.send(["SELECT", db]));
      // A server that wants a password says so here rather than on the first real command.
      if (login.length === 0) login.push(session.send(["PING"]));
      for (const result of await Promise.allSettled(login)) {
        if (result.status === "rejected") throw result.reason;
      }
      await this.#hooks.restore?.(session);
      return session;
    } catch (err) {
      const error = err instanceof RedisError
        ? new RedisConnectionError(`Redis refused the connection: ${err.message}`, { cause: err })
        : err;
      session?.close(error instanceof Error ? error : new RedisConnectionError(String(error)));
      await session?.finished();
      throw error;
    } finally {
      signal.removeEventListener("abort", cancel);
    }
  }
}
