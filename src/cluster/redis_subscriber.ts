/**
 * The pub/sub side of the Redis client: {@linkcode RedisSubscriber} holds
 * the channels and patterns subscribed to and keeps Redis in step across
 * reconnects.
 *
 * @module
 */
import type { RedisConnection } from "./redis_connection.ts";
import { RedisConnectionError } from "./redis_connection_error.ts";
import {
  type RedisClientOptions,
  RedisEngine,
  type RedisState,
  type RedisStateChange,
} from "./redis_engine.ts";
import { RedisError, type RedisReply } from "./resp.ts";

/**
 * Receives a pub/sub message. `payload` is shared by every handler of the
 * message; copy it before changing it. `pattern` is set for messages that
 * matched a {@linkcode RedisSubscriber.psubscribe} pattern.
 */
export type RedisMessageHandler = (payload: Uint8Array, channel: string, pattern?: string) => void;

interface _Subscription {
  handlers: Set<RedisMessageHandler>;
  /** The connection the server confirmed it on; undefined while it is not active. */
  activeOn: RedisConnection | undefined;
  /** The connection it was last sent on, so a connection sends it only once. */
  sentOn: RedisConnection | undefined;
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
 * import { RedisSubscriber } from "./redis_subscriber.ts";
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
  #engine: RedisEngine;
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
   * import { RedisSubscriber } from "./redis_subscriber.ts";
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
    this.#engine = new RedisEngine(url, options, {
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
    session: RedisConnection,
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
  #restore = async (session: RedisConnection): Promise<void> => {
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
  #catchUp = (session: RedisConnection): void => {
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
    let name: string | undefined;
    let subscription: _Subscription | undefined;
    if (reply.length === 3 && _is(reply[0], _MESSAGE)) {
      [, channel, payload] = reply;
      if (!(channel instanceof Uint8Array)) return false;
      // Decoded once: the name both finds the subscription and goes to its handlers.
      name = _utf8.decode(channel);
      subscription = this.#channels.get(name);
    } else if (reply.length === 4 && _is(reply[0], _PMESSAGE)) {
      const matched = reply[1];
      [, , channel, payload] = reply;
      if (!(matched instanceof Uint8Array) || !(channel instanceof Uint8Array)) return false;
      pattern = _utf8.decode(matched);
      subscription = this.#patterns.get(pattern);
    } else {
      return false;
    }
    if (!(payload instanceof Uint8Array)) return false;
    // Messages still in the pipe after an unsubscribe have nobody to go to.
    if (subscription === undefined) return true;
    name ??= _utf8.decode(channel);
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
