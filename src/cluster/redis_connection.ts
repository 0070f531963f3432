/**
 * One connection to Redis: the socket (TCP or TLS), the RESP writer that
 * coalesces the commands of a tick into one write, and the reader that hands
 * replies to the commands in the order they were sent.
 *
 * @module
 */
import { ProtocolError } from "../protocol/protocol_error.ts";
import { RedisConnectionError } from "./redis_connection_error.ts";
import { redisAddress, type RedisEndpoint } from "./redis_url.ts";
import {
  encodeCommand,
  type RedisArg,
  RedisError,
  type RedisReply,
  RespParser,
  type RespParserOptions,
} from "./resp.ts";

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

/** Picks out pub/sub messages; anything it returns false for is a reply to a command. */
export type RedisPushHandler = (reply: RedisReply[]) => boolean;

/**
 * One TCP (or TLS) connection: writes commands coalesced per tick, parses
 * replies and hands them to the commands in the order they were sent.
 */
export class RedisConnection {
  /** The socket. */
  readonly conn: Deno.Conn;
  /** Resolves with the reason once the connection is closed, from either side. */
  readonly closed: Promise<Error>;
  #parser: RespParser;
  #onPush: RedisPushHandler | undefined;
  #pending = new _Fifo<PromiseWithResolvers<RedisReply>>();
  #out: Uint8Array[] = [];
  #flushQueued = false;
  #writing: Promise<void> | undefined;
  #reading: Promise<void>;
  #reason: Error | undefined;
  #resolveClosed!: (reason: Error) => void;

  /** Starts reading replies from `conn`; `onPush` sees every array reply first. */
  constructor(conn: Deno.Conn, parser: RespParserOptions, onPush: RedisPushHandler | undefined) {
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

  /** Settles once reading and writing have stopped, after {@linkcode RedisConnection.close}. */
  async finished(): Promise<void> {
    await this.#reading;
    await this.#writing;
  }
}

/** What {@linkcode openRedisConnection} needs besides the endpoint. */
export interface RedisConnectionOptions {
  /** Limits for the reply parser. */
  parser: RespParserOptions;
  /** Extra PEM root certificates to trust for TLS. */
  caCerts?: string[];
  /** Picks pub/sub messages out of the replies, for a subscriber. */
  onPush?: RedisPushHandler;
}

/**
 * Opens a TCP (or, for `rediss://`, TLS) connection to `endpoint`. Logging
 * in is the caller's: the connection comes back as it is.
 *
 * @throws {RedisConnectionError} When the socket or the TLS handshake fails.
 * @throws The signal's reason when it aborts first.
 *
 * @example
 * ```ts ignore
 * import { openRedisConnection } from "./redis_connection.ts";
 * import { parseRedisUrl } from "./redis_url.ts";
 *
 * const endpoint = parseRedisUrl("redis://127.0.0.1:6379");
 * const signal = AbortSignal.timeout(1_000);
 * const conn = await openRedisConnection(endpoint, { parser: {} }, signal);
 * console.log(await conn.send(["PING"])); // "PONG"
 * conn.close(new Error("Done"));
 * ```
 */
export async function openRedisConnection(
  endpoint: RedisEndpoint,
  options: RedisConnectionOptions,
  signal: AbortSignal,
): Promise<RedisConnection> {
  const { hostname, port, tls } = endpoint;
  /** The socket so far: TCP, then TLS. */
  let tcp: Deno.Conn | undefined;
  // A TLS handshake cannot be aborted, only have its socket closed.
  const cancel = () => _closeQuietly(tcp);
  signal.addEventListener("abort", cancel, { once: true });
  let conn: Deno.Conn;
  try {
    const socket = await Deno.connect({ hostname, port, signal });
    tcp = socket;
    // Without keepalive a silently dead peer would only show on the next write.
    socket.setKeepAlive(true);
    socket.setNoDelay(true);
    conn = socket;
    if (tls) {
      const secure = await Deno.startTls(socket, {
        hostname,
        ...(options.caCerts && { caCerts: options.caCerts }),
      });
      tcp = conn = secure;
      // Explicitly, so a bad certificate reads as a failed connect, not a failed login.
      await secure.handshake();
    }
  } catch (err) {
    _closeQuietly(tcp);
    if (signal.aborted) throw signal.reason;
    throw new RedisConnectionError(
      `Cannot connect to Redis at ${redisAddress(endpoint)}: ${_message(err)}`,
      { cause: err },
    );
  } finally {
    signal.removeEventListener("abort", cancel);
  }
  const connection = new RedisConnection(conn, options.parser, options.onPush);
  if (signal.aborted) connection.close(signal.reason);
  return connection;
}

function _closeQuietly(conn: Deno.Conn | undefined): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
  }
}
