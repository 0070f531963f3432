import { type Logger, silentLogger } from "../log.ts";
import type { ConnectRequest, Operator } from "../server/operator.ts";
import type { ExpiringSession } from "./jwt_operator.ts";
import { readAnswer, sessionOfAnswer } from "./webhook_answer.ts";
import { WebhookUnavailableError } from "./webhook_error.ts";

export {
  WebhookError,
  type WebhookErrorReason,
  type WebhookFailure,
  WebhookUnavailableError,
  type WebhookUnavailableReason,
} from "./webhook_error.ts";

/**
 * The bounds of a {@linkcode WebhookOperator}'s calls when its options do
 * not say; the `comet` command's `--webhook-*` flags start from these.
 *
 * @example
 * ```ts
 * import { DEFAULT_WEBHOOK } from "./webhook_operator.ts";
 * console.log(DEFAULT_WEBHOOK.timeout); // 3000
 * ```
 */
export const DEFAULT_WEBHOOK: Readonly<{
  /** How long one auth call may take, waiting for a slot included, in ms. */
  timeout: number;
  /** Calls in flight at most. */
  concurrency: number;
  /** Auth attempts that may wait for a slot. */
  queue: number;
  /** Largest answer accepted, in bytes. */
  maxResponseBytes: number;
}> = Object.freeze({ timeout: 3_000, concurrency: 64, queue: 1024, maxResponseBytes: 16_384 });

/**
 * How the webhook call proves it comes from Comet.
 *
 * @example
 * ```ts
 * import type { WebhookAuthScheme } from "./webhook_operator.ts";
 *
 * const authScheme: WebhookAuthScheme = "hmac";
 * ```
 */
export type WebhookAuthScheme = "bearer" | "hmac";

/**
 * Options for {@linkcode WebhookOperator}. Durations are in milliseconds.
 *
 * @example
 * ```ts
 * import type { WebhookOperatorOptions } from "./webhook_operator.ts";
 *
 * const options: WebhookOperatorOptions = {
 *   url: "https://app.example/comet/auth",
 *   secret: "a long random secret",
 *   authScheme: "hmac",
 *   timeout: 2_000,
 * };
 * ```
 */
export interface WebhookOperatorOptions {
  /** The application's endpoint: `http:` or `https:`. */
  url: string | URL;
  /** How long one auth call may take, waiting for a slot included. Default 3 s. */
  timeout?: number;
  /** Calls in flight at most. Default 64. */
  concurrency?: number;
  /** Auth attempts that may wait for a slot; past that they are refused as busy. Default 1024. */
  queue?: number;
  /** Largest answer accepted, in bytes. Default 16 KiB. */
  maxResponseBytes?: number;
  /** Shared secret that lets the application trust the call. Default: none. */
  secret?: string;
  /**
   * How the secret is presented. `bearer` (default): `Authorization: Bearer
   * <secret>`. `hmac`: `X-Comet-Signature: t=<unix seconds>,v1=<hex>`, where
   * v1 is HMAC-SHA256 with the secret over `<t>.<request body>`; the secret
   * never travels and the application can refuse stale timestamps.
   */
  authScheme?: WebhookAuthScheme;
  /**
   * WebSocket upgrade headers forwarded to the application, lower case.
   * Default: cookie, origin, user-agent, x-forwarded-for, x-real-ip.
   */
  forwardHeaders?: readonly string[];
  /** HTTP client for custom CA certificates or proxies. Default: fetch's own. */
  client?: Deno.HttpClient;
  /** Where failures of the auth service are logged (clients only see a short reason). */
  logger?: Logger;
  /** Aborting cancels calls in flight and refuses new attempts. */
  signal?: AbortSignal;
}

/** A {@linkcode ConnectRequest} from a hub that tells when the connection is gone. */
interface _SignalledRequest extends ConnectRequest {
  signal?: AbortSignal;
}

const _encoder = new TextEncoder();
const _utf8 = new TextDecoder("utf-8", { fatal: true });
const _DEFAULT_HEADERS = ["cookie", "origin", "user-agent", "x-forwarded-for", "x-real-ip"];

function _count(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer of at least ${min}: ${value}`);
  }
  return value;
}

function _base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function _hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Authenticates connections by asking the application over HTTP. Each auth
 * attempt POSTs JSON to `url`:
 *
 * ```json
 * { "body": "<auth body>", "body_encoding": "utf8",
 *   "transport": "ws", "remote_addr": "203.0.113.7", "remote_port": 51234,
 *   "headers": { "cookie": "sid=...", "origin": "https://app.example" } }
 * ```
 *
 * (`body_encoding` is `base64` when the auth body is not UTF-8; `headers`
 * holds the forwarded WebSocket upgrade headers that were present.)
 *
 * A 2xx answer `{"mid": 7, "key": "...", "room": "live://1", "accepts": [1000],
 * "rooms": ["live://1", "live://2"], "platform": "web", "heartbeat": 240,
 * "expires_at": 1767225600}` (`rooms`, when given, confines op 12; mid
 * required; heartbeat in seconds; expires_at in epoch seconds) accepts the
 * connection. `{"error": "reason"}` refuses it, and the client gets op 6
 * `auth failed: reason`; so does a 4xx whose JSON has `error`. Any other
 * status refuses with `auth service failed: <status>` and its body is not
 * shown to the client. Redirects are not followed.
 *
 * Calls are bounded: at most `concurrency` in flight, at most `queue`
 * waiting (more are refused with `auth service busy`), and each attempt,
 * wait included, takes at most `timeout` (then `auth service busy` while
 * waiting, `auth service timed out` once sent). Answers over
 * `maxResponseBytes` are refused.
 *
 * @example
 * ```ts
 * import { WebhookOperator } from "./webhook_operator.ts";
 *
 * const operator = new WebhookOperator({
 *   url: "http://127.0.0.1:8080/comet/auth",
 *   secret: "shared with the application",
 *   authScheme: "hmac",
 *   timeout: 2_000,
 * });
 * // serve({ operator });
 * ```
 */
export class WebhookOperator implements Operator {
  /** The endpoint called. */
  readonly url: URL;
  #timeout: number;
  #concurrency: number;
  #queueLimit: number;
  #maxResponse: number;
  #secret: string | undefined;
  #scheme: WebhookAuthScheme;
  #hmacKey: Promise<CryptoKey> | undefined;
  #forward: string[];
  #client: Deno.HttpClient | undefined;
  #logger: Logger;
  #signal: AbortSignal | undefined;
  #inflight = 0;
  // A Set keeps insertion order (FIFO) and lets a waiter that gives up leave in O(1).
  #waiting = new Set<() => void>();
  #calls = new Set<AbortController>();

  /**
   * Checks the options.
   *
   * @throws {TypeError} When the URL is not http(s), or the scheme unknown.
   * @throws {RangeError} When a number is out of range.
   */
  constructor(options: WebhookOperatorOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new TypeError(`Webhook URL is not a URL: ${options.url}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`Webhook URL must be http or https: ${url.protocol}`);
    }
    if (url.username !== "" || url.password !== "") {
      // Credentials in the URL end up in logs; the secret option is the way.
      throw new TypeError("Webhook URL must not carry credentials: use the secret option");
    }
    this.url = url;
    const timeout = options.timeout ?? DEFAULT_WEBHOOK.timeout;
    if (!Number.isFinite(timeout) || timeout <= 0) {
      throw new RangeError(`Webhook timeout must be a positive number: ${timeout}`);
    }
    this.#timeout = timeout;
    this.#concurrency = _count(
      "Webhook concurrency",
      options.concurrency,
      DEFAULT_WEBHOOK.concurrency,
      1,
    );
    this.#queueLimit = _count("Webhook queue", options.queue, DEFAULT_WEBHOOK.queue, 0);
    this.#maxResponse = _count(
      "Webhook response limit",
      options.maxResponseBytes,
      DEFAULT_WEBHOOK.maxResponseBytes,
      16,
    );
    const scheme = options.authScheme ?? "bearer";
    if (scheme !== "bearer" && scheme !== "hmac") {
      throw new TypeError(`Webhook auth scheme must be bearer or hmac: ${scheme}`);
    }
    this.#scheme = scheme;
    if (options.authScheme !== undefined && options.secret === undefined) {
      throw new TypeError("Webhook auth scheme needs a secret");
    }
    if (options.secret !== undefined) {
      if (typeof options.secret !== "string" || options.secret === "") {
        throw new TypeError("Webhook secret must be a non-empty string");
      }
      if (scheme === "bearer" && /[\r\n]/.test(options.secret)) {
        throw new TypeError("Webhook secret must not contain line breaks");
      }
      this.#secret = options.secret;
      if (scheme === "hmac") {
        this.#hmacKey = crypto.subtle.importKey(
          "raw",
          _encoder.encode(options.secret),
          { name: "HMAC", hash: "SHA-256" },
          false,
          ["sign"],
        );
      }
    }
    this.#forward = (options.forwardHeaders ?? _DEFAULT_HEADERS).map((h) => h.toLowerCase());
    this.#client = options.client;
    this.#logger = options.logger ?? silentLogger;
    this.#signal = options.signal;
    this.#signal?.addEventListener("abort", () => {
      for (const call of this.#calls) call.abort();
    }, { once: true });
  }

  /** Calls in flight now. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Attempts waiting for a slot now. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * Asks the application about this connection.
   *
   * @throws {WebhookError} When the application refuses.
   * @throws {WebhookUnavailableError} When it cannot be asked in time, or
   * gives no answer that can be read (an `OperatorUnavailableError`).
   */
  async connect(request: ConnectRequest): Promise<ExpiringSession> {
    if (this.#signal?.aborted) {
      throw new WebhookUnavailableError("closed", "auth service unavailable");
    }
    const call = new AbortController();
    const timer = setTimeout(() => call.abort(), this.#timeout);
    const gone = (request as _SignalledRequest).signal;
    const onGone = () => call.abort();
    gone?.addEventListener("abort", onGone, { once: true });
    this.#calls.add(call);
    try {
      if (gone?.aborted) throw new WebhookUnavailableError("closed", "connection closed");
      await this.#acquire(call.signal);
      try {
        return await this.#call(request, call.signal);
      } finally {
        this.#release();
      }
    } catch (err) {
      // Nobody is left to tell; say so rather than blame the application.
      if (gone?.aborted && !this.#signal?.aborted) {
        throw new WebhookUnavailableError("closed", "connection closed", { cause: err });
      }
      throw err;
    } finally {
      clearTimeout(timer);
      gone?.removeEventListener("abort", onGone);
      this.#calls.delete(call);
    }
  }

  async #acquire(signal: AbortSignal): Promise<void> {
    if (this.#inflight < this.#concurrency) {
      this.#inflight++;
      return;
    }
    if (this.#waiting.size >= this.#queueLimit) {
      throw new WebhookUnavailableError("busy", "auth service busy");
    }
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#waiting.delete(granted);
        reject(
          this.#signal?.aborted
            ? new WebhookUnavailableError("closed", "auth service unavailable")
            : new WebhookUnavailableError("busy", "auth service busy"),
        );
      };
      // #release hands its slot straight over, so #inflight stays counted.
      const granted = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      this.#waiting.add(granted);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  #release(): void {
    const next = this.#waiting.values().next();
    if (next.done) {
      this.#inflight--;
    } else {
      this.#waiting.delete(next.value);
      next.value();
    }
  }

  async #headers(json: string): Promise<Headers> {
    const headers = new Headers({
      "content-type": "application/json",
      accept: "application/json",
    });
    if (this.#secret !== undefined) {
      if (this.#scheme === "bearer") headers.set("authorization", `Bearer ${this.#secret}`);
      else {
        const t = Math.floor(Date.now() / 1000);
        const mac = await crypto.subtle.sign(
          "HMAC",
          await this.#hmacKey!,
          _encoder.encode(`${t}.${json}`),
        );
        headers.set("x-comet-signature", `t=${t},v1=${_hex(mac)}`);
      }
    }
    return headers;
  }

  #requestBody(request: ConnectRequest): string {
    const { body, info } = request;
    let text: string;
    let encoding: "utf8" | "base64";
    try {
      text = _utf8.decode(body);
      encoding = "utf8";
    } catch {
      text = _base64(body);
      encoding = "base64";
    }
    const headers: Record<string, string> = {};
    for (const name of this.#forward) {
      const v = info.headers?.get(name);
      if (v !== null && v !== undefined) headers[name] = v;
    }
    return JSON.stringify({
      body: text,
      body_encoding: encoding,
      transport: info.transport,
      remote_addr: info.remoteAddr.hostname,
      remote_port: info.remoteAddr.port,
      headers,
    });
  }

  async #call(request: ConnectRequest, signal: AbortSignal): Promise<ExpiringSession> {
    const json = this.#requestBody(request);
    let res: Response;
    try {
      res = await fetch(this.url, {
        method: "POST",
        headers: await this.#headers(json),
        body: json,
        redirect: "manual",
        signal,
        ...(this.#client && { client: this.#client }),
      });
    } catch (err) {
      throw this.#failure(err, signal);
    }
    let bytes: Uint8Array;
    try {
      if (res.status >= 500 || (res.status < 400 && !res.ok)) {
        await res.body?.cancel();
        this.#logger.warn("Auth service failed", { url: this.url.href, status: res.status });
        throw new WebhookUnavailableError("unavailable", `auth service failed: ${res.status}`);
      }
      bytes = await readAnswer(res, this.#maxResponse);
    } catch (err) {
      if (err instanceof WebhookUnavailableError) throw err;
      throw this.#failure(err, signal);
    }
    return sessionOfAnswer(res, bytes);
  }

  #failure(err: unknown, signal: AbortSignal): WebhookUnavailableError {
    if (this.#signal?.aborted) {
      return new WebhookUnavailableError("closed", "auth service unavailable");
    }
    if (signal.aborted) {
      this.#logger.warn("Auth service timed out", { url: this.url.href });
      return new WebhookUnavailableError("timeout", "auth service timed out", { cause: err });
    }
    this.#logger.warn("Auth service unreachable", { url: this.url.href, error: err });
    return new WebhookUnavailableError("unavailable", "auth service unavailable", { cause: err });
  }
}
