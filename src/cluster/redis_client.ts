/**
 * A small Redis client for clustering Comet nodes: {@linkcode RedisClient}
 * for commands (pipelined) and {@linkcode RedisSubscriber} for pub/sub, both
 * reconnecting by themselves. RESP2 over TCP or TLS, no dependencies.
 *
 * @module
 */
import { reconnectDelay, type ReconnectOptions, reconnectPolicy } from "../reconnect/backoff.ts";
import { ProtocolError } from "../protocol/protocol_error.ts";
import {
  encodeCommand,
  type RedisArg,
  RedisError,
  type RedisReply,
  RespParser,
  type RespParserOptions,
} from "./resp.ts";

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
 * import { parseRedisUrl } from "./redis_client.ts";
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

// --- internals ---------------------------------------------------------------

/** A FIFO that does not shift arrays: a pipeline may hold many thousand entries. */
class _Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 4096 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
}

function _message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function _address(endpoint: RedisEndpoint): string {
  const host = endpoint.hostname.includes(":") ? `[${endpoint.hostname}]` : endpoint.hostname;
  return `${host}:${endpoint.port}`;
}

/** Picks out pub/sub messages; anything else it returns false for is a reply to a command. */
type _PushHandler = (reply: RedisReply[]) => boolean;

/**
 * One TCP (or TLS) connection: writes commands coalesced per tick, parses
 * replies and hands them to the commands in the order they were sent.
 */
class _Session {
  readonly conn: Deno.Conn;
  /** Resolves with the reason once the connection is closed, from either side. */
  readonly closed: Promise<Error>;
  #parser: RespParser;
  #onPush: _PushHandler | undefined;
  #pending = new _Fifo<PromiseWithResolvers<RedisReply>>();
  #out: Uint8Array[] = [];
  #flushQueued = false;
  #writing: Promise<void> | undefined;
  #reading: Promise<void>;
  #reason: Error | undefined;
  #resolveClosed!: (reason: Error) => void;

  constructor(conn: Deno.Conn, parser: RespParserOptions, onPush: _PushHandler | undefined) {
    this.conn = conn;
    this.#parser = new RespParser(parser);
    this.#onPush = onPush;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#reading = this.#read();
  }

  /** Queues a command; it goes out with the others issued in the same tick. */
  send(args: readonly RedisArg[]): Promise<RedisReply> {
    if (this.#reason !== undefined) return Promise.reject(this.#reason);
    let bytes: Uint8Array;
    try {
      bytes = encodeCommand(args);
    } catch (err) {
      return Promise.reject(err);
    }
    const reply = Promise.withResolvers<RedisReply>();
    this.#pending.push(reply);
    this.#out.push(bytes);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
    return reply.promise;
  }

  #flush = (): void => {
    this.#flushQueued = false;
    // A write in progress picks up what was queued meanwhile.
    if (this.#writing === undefined && this.#reason === undefined) this.#writing = this.#write();
  };

  async #write(): Promise<void> {
    try {
      while (this.#out.length > 0 && this.#reason === undefined) {
        const parts = this.#out;
        this.#out = [];
        let data = parts[0]!;
        if (parts.length > 1) {
          let size = 0;
          for (const part of parts) size += part.length;
          data = new Uint8Array(size);
          let offset = 0;
          for (const part of parts) {
            data.set(part, offset);
            offset += part.length;
          }
        }
        for (let offset = 0; offset < data.length;) {
          offset += await this.conn.write(data.subarray(offset));
        }
      }
    } catch (err) {
      this.close(
        new RedisConnectionError(`Writing to Redis failed: ${_message(err)}`, { cause: err }),
      );
    } finally {
      this.#writing = undefined;
    }
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let reason: Error;
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) {
          reason = new RedisConnectionError("Redis closed the connection");
          break;
        }
        for (const reply of this.#parser.parse(buffer.subarray(0, n))) this.#dispatch(reply);
      }
    } catch (err) {
      if (this.#reason !== undefined) return;
      reason = err instanceof ProtocolError
        ? new RedisConnectionError(`Redis sent a malformed reply: ${err.message}`, { cause: err })
        : new RedisConnectionError(`Reading from Redis failed: ${_message(err)}`, { cause: err });
    }
    this.close(reason);
  }

  #dispatch(reply: RedisReply): void {
    if (this.#onPush !== undefined && Array.isArray(reply) && this.#onPush(reply)) return;
    const waiting = this.#pending.shift();
    if (waiting === undefined) throw new ProtocolError("Reply arrived with no command waiting");
    if (reply instanceof RedisError) waiting.reject(reply);
    else waiting.resolve(reply);
  }

  /** Closes the connection and rejects every command in flight with `reason`. Idempotent. */
  close(reason: Error): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#out = [];
    try {
      this.conn.close();
    } catch {
      // Already closed by a failed read or write.
    }
    for (let waiting; (waiting = this.#pending.shift()) !== undefined;) waiting.reject(reason);
    this.#resolveClosed(reason);
  }

  /** Settles once reading and writing have stopped, after {@linkcode _Session.close}. */
  async finished(): Promise<void> {
    await this.#reading;
    await this.#writing;
  }
}

interface _Hooks {
  onPush?: _PushHandler;
  /** Extra commands for a new connection (re-subscribing), run after the login. */
  restore?: (session: _Session) => Promise<void>;
  /** Called once a new connection is the current one. */
  ready?: (session: _Session) => void;
}

/** The connection lifecycle shared by client and subscriber: connect, log in, reconnect, close. */
class _Engine {
  readonly endpoint: RedisEndpoint;
  readonly address: string;
  readonly ready: Promise<void>;
  state: RedisState = "connecting";
  session: _Session | undefined;
  #hooks: _Hooks;
  #parser: RespParserOptions;
  #reconnect: Required<ReconnectOptions> | false;
  #retryFirst: boolean;
  #connectTimeout: number;
  #caCerts: string[] | undefined;
  #signal: AbortSignal | undefined;
  #stop = new AbortController();
  #stateListeners = new Set<(change: RedisStateChange) => void>();
  #errorListeners = new Set<(error: Error) => void>();
  #resolveReady!: () => void;
  #rejectReady!: (reason: Error) => void;
  #running: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(url: string, options: RedisClientOptions, hooks: _Hooks) {
    this.endpoint = parseRedisUrl(url);
    this.address = _address(this.endpoint);
    this.#hooks = hooks;
    this.#parser = {};
    if (options.maxBulkLength !== undefined) this.#parser.maxBulkLength = options.maxBulkLength;
    if (options.maxLineLength !== undefined) this.#parser.maxLineLength = options.maxLineLength;
    new RespParser(this.#parser); // Checks the limits now rather than on every connect.
    if (options.reconnect === false) {
      this.#reconnect = false;
    } else {
      const given = options.reconnect ?? {};
      const maxDelay = given.maxDelay ?? 10_000;
      // The default first delay must not trip over a smaller maxDelay of the caller's.
      const initialDelay = maxDelay >= 0 ? Math.min(100, maxDelay) : 100;
      this.#reconnect = reconnectPolicy({ initialDelay, maxDelay, ...given });
    }
    this.#retryFirst = options.retryFirstConnect ?? false;
    this.#connectTimeout = options.connectTimeout ?? 10_000;
    if (!(Number.isFinite(this.#connectTimeout) && this.#connectTimeout > 0)) {
      throw new RangeError(`Connect timeout must be a positive number: ${this.#connectTimeout}`);
    }
    this.#caCerts = options.caCerts;
    this.ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // Whoever never awaits `ready` must not get an unhandled rejection from it.
    this.ready.catch(() => {});
    this.#signal = options.signal;
    if (this.#signal?.aborted) {
      this.#running = Promise.resolve();
      this.#abort();
      return;
    }
    this.#signal?.addEventListener("abort", this.#abort, { once: true });
    this.#running = this.#run();
  }

  onState(listener: (change: RedisStateChange) => void): () => void {
    if (typeof listener !== "function") throw new TypeError("State listener must be a function");
    this.#stateListeners.add(listener);
    return () => void this.#stateListeners.delete(listener);
  }

  onError(listener: (error: Error) => void): () => void {
    if (typeof listener !== "function") throw new TypeError("Error listener must be a function");
    this.#errorListeners.add(listener);
    return () => void this.#errorListeners.delete(listener);
  }

  report(error: Error): void {
    for (const listener of this.#errorListeners) {
      try {
        listener(error);
      } catch {
        // An error listener that throws has nowhere left to report to.
      }
    }
  }

  /** The current connection, or the error to fail a command with right away. */
  current(): _Session | RedisConnectionError {
    if (this.state === "ready" && this.session !== undefined) return this.session;
    switch (this.state) {
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

  send(args: readonly RedisArg[]): Promise<RedisReply> {
    const session = this.current();
    if (session instanceof RedisConnectionError) return Promise.reject(session);
    return session.send(args);
  }

  close(): Promise<void> {
    return this.#terminate(new RedisConnectionError("Redis client closed"));
  }

  #abort = (): void => {
    void this.#terminate(
      new RedisConnectionError("Redis client closed: the signal was aborted", {
        cause: this.#signal?.reason,
      }),
    );
  };

  #terminate(reason: Error): Promise<void> {
    return this.#closing ??= this.#shutdown(reason);
  }

  async #shutdown(reason: Error): Promise<void> {
    this.#signal?.removeEventListener("abort", this.#abort);
    this.#stop.abort(reason);
    this.#setState("closed", reason);
    this.#rejectReady(reason);
    const session = this.session;
    this.session = undefined;
    session?.close(reason);
    await this.#running;
    await session?.finished();
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    let connected = false;
    let failures = 0;
    while (!stop.aborted) {
      let session: _Session;
      try {
        session = await this.#attempt();
      } catch (err) {
        if (stop.aborted) return;
        const error = err instanceof Error ? err : new Error(String(err));
        if (!connected && !this.#retryFirst) {
          void this.#terminate(error);
          return;
        }
        this.report(error);
        failures++;
        const policy = this.#reconnect;
        if (policy === false || failures >= policy.maxAttempts) {
          void this.#terminate(
            new RedisConnectionError(
              `Reconnecting to Redis gave up after ${failures} attempts: ${error.message}`,
              { cause: error },
            ),
          );
          return;
        }
        await this.#sleep(reconnectDelay(failures, policy));
        continue;
      }
      connected = true;
      failures = 0;
      this.session = session;
      this.#setState("ready");
      this.#resolveReady();
      this.#hooks.ready?.(session);
      const reason = await session.closed;
      if (this.session === session) this.session = undefined;
      if (stop.aborted) return;
      if (this.#reconnect === false) {
        void this.#terminate(reason);
        return;
      }
      this.#setState("reconnecting", reason);
      await session.finished();
      await this.#sleep(reconnectDelay(0, this.#reconnect));
    }
  }

  /** One attempt: connects, logs in, selects the database and lets the hooks restore state. */
  async #attempt(): Promise<_Session> {
    const stop = this.#stop.signal;
    const { hostname, port, tls, username, password, db } = this.endpoint;
    const attempt = new AbortController();
    /** The socket before there is a session to close: TCP, then TLS. */
    let tcp: Deno.Conn | undefined;
    let session: _Session | undefined;
    const cancel = () => {
      const reason = attempt.signal.aborted ? attempt.signal.reason : stop.reason;
      attempt.abort(reason);
      if (session !== undefined) session.close(reason);
      else {
        try {
          // A TLS handshake cannot be aborted, only have its socket closed.
          tcp?.close();
        } catch {
          // Already closed.
        }
      }
    };
    stop.addEventListener("abort", cancel, { once: true });
    const timer = setTimeout(() => {
      attempt.abort(
        new RedisConnectionError(
          `Connecting to Redis timed out: ${this.address} was not ready within ${this.#connectTimeout} ms`,
        ),
      );
      cancel();
    }, this.#connectTimeout);
    try {
      let conn: Deno.Conn;
      try {
        const socket = await Deno.connect({ hostname, port, signal: attempt.signal });
        tcp = socket;
        // Without keepalive a silently dead peer would only show on the next write.
        socket.setKeepAlive(true);
        socket.setNoDelay(true);
        conn = socket;
        if (tls) {
          const secure = await Deno.startTls(socket, {
            hostname,
            ...(this.#caCerts && { caCerts: this.#caCerts }),
          });
          tcp = conn = secure;
          // Explicitly, so a bad certificate reads as a failed connect, not a failed login.
          await secure.handshake();
        }
      } catch (err) {
        try {
          tcp?.close();
        } catch {
          // Already closed by the cancel.
        }
        if (attempt.signal.aborted) throw attempt.signal.reason;
        throw new RedisConnectionError(
          `Cannot connect to Redis at ${this.address}: ${_message(err)}`,
          { cause: err },
        );
      }
      session = new _Session(conn, this.#parser, this.#hooks.onPush);
      if (attempt.signal.aborted) session.close(attempt.signal.reason);
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
      clearTimeout(timer);
      stop.removeEventListener("abort", cancel);
    }
  }

  #sleep(ms: number): Promise<void> {
    const stop = this.#stop.signal;
    if (stop.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stop.addEventListener("abort", done, { once: true });
    });
  }

  #setState(state: RedisState, reason?: Error): void {
    const previous = this.state;
    if (previous === state || previous === "closed") return;
    this.state = state;
    const change: RedisStateChange = reason ? { state, previous, reason } : { state, previous };
    for (const listener of this.#stateListeners) {
      try {
        listener(change);
      } catch (err) {
        this.report(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }
}

// --- client ------------------------------------------------------------------

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
  #engine: _Engine;

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
    this.#engine = new _Engine(url, options, {});
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

// --- subscriber --------------------------------------------------------------

/**
 * Receives a pub/sub message. `payload` is shared by every handler of the
 * message; copy it before changing it. `pattern` is set for messages that
 * matched a {@linkcode RedisSubscriber.psubscribe} pattern.
 */
export type RedisMessageHandler = (payload: Uint8Array, channel: string, pattern?: string) => void;

interface _Subscription {
  handlers: Set<RedisMessageHandler>;
  /** The connection the server confirmed it on; undefined while it is not active. */
  activeOn: _Session | undefined;
  /** The connection it was last sent on, so a connection sends it only once. */
  sentOn: _Session | undefined;
  waiters: PromiseWithResolvers<void>[];
}

const _utf8 = new TextDecoder();

function _is(bytes: RedisReply | undefined, word: Uint8Array): boolean {
  if (!(bytes instanceof Uint8Array) || bytes.length !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (bytes[i] !== word[i]) return false;
  return true;
}

const _MESSAGE = new TextEncoder().encode("message");
const _PMESSAGE = new TextEncoder().encode("pmessage");

/**
 * A Redis connection in pub/sub mode. It holds the set of channels and
 * patterns subscribed to and keeps Redis in step: subscriptions are sent
 * when made and again on every reconnect, after the login, before the
 * subscriber counts as `ready`. Messages published while it is
 * disconnected are lost, as pub/sub has no memory.
 *
 * Channel names and patterns are text; payloads are bytes.
 *
 * @example
 * ```ts ignore
 * import { RedisSubscriber } from "./redis_client.ts";
 *
 * await using sub = await RedisSubscriber.connect("redis://127.0.0.1:6379");
 * await sub.subscribe("comet/broadcast", (payload, channel) => {
 *   console.log(channel, new TextDecoder().decode(payload));
 * });
 * await sub.psubscribe("comet/room/*", (payload, channel, pattern) => {
 *   console.log(pattern, channel, payload.length);
 * });
 * ```
 */
export class RedisSubscriber implements AsyncDisposable {
  /** As {@linkcode RedisClient.ready}; on a reconnect, `ready` also means re-subscribed. */
  readonly ready: Promise<void>;
  #engine: _Engine;
  #channels = new Map<string, _Subscription>();
  #patterns = new Map<string, _Subscription>();

  /**
   * Connects and resolves once the connection is logged in and ready.
   *
   * @param url `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS.
   * @param options Reconnection, timeouts, limits, signal.
   * @returns The ready subscriber, with nothing subscribed yet.
   * @throws {RedisConnectionError} When Redis cannot be reached, refuses the
   * login, or does not answer within `connectTimeout`.
   * @throws {TypeError} When the URL is unusable.
   * @throws {RangeError} When an option is out of range.
   *
   * @example
   * ```ts ignore
   * import { RedisSubscriber } from "./redis_client.ts";
   * await using sub = await RedisSubscriber.connect("redis://127.0.0.1:6379");
   * await sub.subscribe("news", (payload) => console.log(payload.length));
   * ```
   */
  static async connect(url: string, options: RedisClientOptions = {}): Promise<RedisSubscriber> {
    const subscriber = new RedisSubscriber(url, options);
    try {
      await subscriber.ready;
    } catch (err) {
      await subscriber.close();
      throw err;
    }
    return subscriber;
  }

  /**
   * Creates the subscriber and starts connecting in the background.
   * Subscriptions may be made at once; they reach Redis when it is ready.
   *
   * @param url `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS.
   * @param options Reconnection, timeouts, limits, signal.
   * @throws {TypeError} When the URL is unusable.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(url: string, options: RedisClientOptions = {}) {
    this.#engine = new _Engine(url, options, {
      onPush: this.#onPush,
      restore: this.#restore,
      ready: this.#catchUp,
    });
    this.ready = this.#engine.ready;
  }

  /** The state now; see {@linkcode RedisState}. */
  get state(): RedisState {
    return this.#engine.state;
  }

  /** Channels subscribed to (confirmed or not), in the order they were first subscribed. */
  get channels(): string[] {
    return [...this.#channels.keys()];
  }

  /** Patterns subscribed to (confirmed or not), in the order they were first subscribed. */
  get patterns(): string[] {
    return [...this.#patterns.keys()];
  }

  /**
   * Calls `handler` with every message published on `channel`. Several
   * handlers may share a channel; Redis hears of it once.
   *
   * The subscription holds from this call on, across reconnects, until
   * {@linkcode RedisSubscriber.unsubscribe}. The promise says when Redis has
   * confirmed it: at once when it already had, else when the current
   * connection or, if there is none, the next one does.
   *
   * @throws {RedisConnectionError} When the subscriber is closed (also
   * while waiting for the confirmation).
   * @throws {RedisError} When Redis refuses the subscription; it is dropped.
   * @throws {TypeError} When `channel` is not a string or `handler` not a function.
   */
  subscribe(channel: string, handler: RedisMessageHandler): Promise<void> {
    return this.#add("SUBSCRIBE", this.#channels, channel, handler);
  }

  /**
   * Like {@linkcode RedisSubscriber.subscribe} for a glob-style pattern
   * (`comet/room/*`); the handler gets the pattern as its third argument.
   *
   * @throws {RedisConnectionError} When the subscriber is closed.
   * @throws {RedisError} When Redis refuses the subscription; it is dropped.
   * @throws {TypeError} When `pattern` is not a string or `handler` not a function.
   */
  psubscribe(pattern: string, handler: RedisMessageHandler): Promise<void> {
    return this.#add("PSUBSCRIBE", this.#patterns, pattern, handler);
  }

  /**
   * Removes `handler` from `channel`, or every handler when none is given;
   * Redis is told once no handler is left. Resolves once it has confirmed,
   * or at once when there is no connection (the next one will not
   * subscribe). Unknown channels and handlers are ignored.
   *
   * @throws {TypeError} When `channel` is not a string.
   */
  unsubscribe(channel: string, handler?: RedisMessageHandler): Promise<void> {
    return this.#remove("UNSUBSCRIBE", this.#channels, channel, handler);
  }

  /**
   * Like {@linkcode RedisSubscriber.unsubscribe} for a pattern.
   *
   * @throws {TypeError} When `pattern` is not a string.
   */
  punsubscribe(pattern: string, handler?: RedisMessageHandler): Promise<void> {
    return this.#remove("PUNSUBSCRIBE", this.#patterns, pattern, handler);
  }

  /** Calls `listener` on every state change. Returns a function that removes it. */
  onState(listener: (change: RedisStateChange) => void): () => void {
    return this.#engine.onState(listener);
  }

  /**
   * Calls `listener` with problems no caller can be told about: failed
   * reconnection attempts, throwing message handlers and state listeners.
   *
   * @returns A function that removes the listener.
   */
  onError(listener: (error: Error) => void): () => void {
    return this.#engine.onError(listener);
  }

  /**
   * Closes the subscriber for good: stops reconnecting, rejects pending
   * subscribes with {@linkcode RedisConnectionError}, closes the connection
   * and settles in state `closed`. Idempotent.
   */
  async close(): Promise<void> {
    const closing = this.#engine.close();
    const reason = new RedisConnectionError("Redis subscriber closed");
    for (const map of [this.#channels, this.#patterns]) {
      for (const subscription of map.values()) {
        for (const waiter of subscription.waiters.splice(0)) waiter.reject(reason);
      }
    }
    await closing;
  }

  /** Same as {@linkcode RedisSubscriber.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #add(
    command: "SUBSCRIBE" | "PSUBSCRIBE",
    map: Map<string, _Subscription>,
    name: string,
    handler: RedisMessageHandler,
  ): Promise<void> {
    const what = command === "SUBSCRIBE" ? "Channel" : "Pattern";
    if (typeof name !== "string") throw new TypeError(`${what} must be a string: ${typeof name}`);
    if (typeof handler !== "function") throw new TypeError("Handler must be a function");
    if (this.#engine.state === "closed") {
      return Promise.reject(new RedisConnectionError("Redis subscriber is closed"));
    }
    let subscription = map.get(name);
    if (subscription === undefined) {
      subscription = { handlers: new Set(), activeOn: undefined, sentOn: undefined, waiters: [] };
      map.set(name, subscription);
    }
    subscription.handlers.add(handler);
    const session = this.#engine.current();
    if (session instanceof RedisConnectionError) {
      // Not connected: the next connection subscribes it.
    } else if (subscription.activeOn === session) {
      return Promise.resolve();
    } else if (subscription.sentOn !== session) {
      void this.#apply(session, command, map, name, subscription);
    }
    const waiter = Promise.withResolvers<void>();
    subscription.waiters.push(waiter);
    return waiter.promise;
  }

  async #remove(
    command: "UNSUBSCRIBE" | "PUNSUBSCRIBE",
    map: Map<string, _Subscription>,
    name: string,
    handler: RedisMessageHandler | undefined,
  ): Promise<void> {
    const what = command === "UNSUBSCRIBE" ? "Channel" : "Pattern";
    if (typeof name !== "string") throw new TypeError(`${what} must be a string: ${typeof name}`);
    const subscription = map.get(name);
    if (subscription === undefined) return;
    if (handler !== undefined) subscription.handlers.delete(handler);
    else subscription.handlers.clear();
    if (subscription.handlers.size > 0) return;
    map.delete(name);
    // Nobody listens any more, so there is nothing left to wait for.
    for (const waiter of subscription.waiters.splice(0)) waiter.resolve();
    const session = this.#engine.current();
    if (session instanceof RedisConnectionError || subscription.sentOn !== session) return;
    try {
      await session.send([command, name]);
    } catch (err) {
      // A dropped connection unsubscribed everything anyway.
      if (!(err instanceof RedisConnectionError)) throw err;
    }
  }

  /**
   * Sends one (P)SUBSCRIBE and marks the subscription active when Redis
   * confirms it; `settle` resolves its waiters then, else the ready hook
   * does. Resolves with the connection error when the connection drops
   * first (the next connection sends it again), else undefined.
   */
  async #apply(
    session: _Session,
    command: "SUBSCRIBE" | "PSUBSCRIBE",
    map: Map<string, _Subscription>,
    name: string,
    subscription: _Subscription,
    settle = true,
  ): Promise<Error | undefined> {
    subscription.sentOn = session;
    try {
      await session.send([command, name]);
    } catch (err) {
      if (!(err instanceof RedisError)) return err instanceof Error ? err : new Error(String(err));
      // A refusal is final: keeping the subscription would only be refused again.
      if (map.get(name) === subscription) map.delete(name);
      for (const waiter of subscription.waiters.splice(0)) waiter.reject(err);
      this.#engine.report(err);
      return undefined;
    }
    // Unsubscribed (and maybe subscribed anew) while this was on its way.
    if (map.get(name) !== subscription) return undefined;
    subscription.activeOn = session;
    if (settle) { for (const waiter of subscription.waiters.splice(0)) waiter.resolve(); }
    return undefined;
  }

  // Waiters are settled in #catchUp, so that a resolved subscribe() finds the subscriber ready.
  #restore = async (session: _Session): Promise<void> => {
    const applied: Promise<Error | undefined>[] = [];
    for (const [name, subscription] of this.#channels) {
      applied.push(this.#apply(session, "SUBSCRIBE", this.#channels, name, subscription, false));
    }
    for (const [name, subscription] of this.#patterns) {
      applied.push(this.#apply(session, "PSUBSCRIBE", this.#patterns, name, subscription, false));
    }
    for (const error of await Promise.all(applied)) if (error !== undefined) throw error;
  };

  /**
   * Once a connection is ready: settles what it restored and sends what was
   * subscribed while it was being set up.
   */
  #catchUp = (session: _Session): void => {
    for (const command of ["SUBSCRIBE", "PSUBSCRIBE"] as const) {
      const map = command === "SUBSCRIBE" ? this.#channels : this.#patterns;
      for (const [name, subscription] of map) {
        if (subscription.activeOn === session) {
          for (const waiter of subscription.waiters.splice(0)) waiter.resolve();
        } else if (subscription.sentOn !== session) {
          void this.#apply(session, command, map, name, subscription);
        }
      }
    }
  };

  #onPush = (reply: RedisReply[]): boolean => {
    let pattern: string | undefined;
    let channel: RedisReply | undefined;
    let payload: RedisReply | undefined;
    let subscription: _Subscription | undefined;
    if (reply.length === 3 && _is(reply[0], _MESSAGE)) {
      [, channel, payload] = reply;
      if (!(channel instanceof Uint8Array)) return false;
      subscription = this.#channels.get(_utf8.decode(channel));
    } else if (reply.length === 4 && _is(reply[0], _PMESSAGE)) {
      const name = reply[1];
      [, , channel, payload] = reply;
      if (!(name instanceof Uint8Array) || !(channel instanceof Uint8Array)) return false;
      pattern = _utf8.decode(name);
      subscription = this.#patterns.get(pattern);
    } else {
      return false;
    }
    if (!(payload instanceof Uint8Array)) return false;
    // Messages still in the pipe after an unsubscribe have nobody to go to.
    if (subscription === undefined) return true;
    const name = _utf8.decode(channel);
    for (const handler of subscription.handlers) {
      try {
        if (pattern === undefined) handler(payload, name);
        else handler(payload, name, pattern);
      } catch (err) {
        this.#engine.report(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return true;
  };
}
