/**
 * Comet as one `fetch` handler: goim clients upgrade to WebSocket on `/sub`,
 * application backends push through the goim push API (`/goim/push/...`,
 * `/goim/online/...`, `/healthz`) at the same origin. The default export
 * runs unchanged under `deno serve` and on an edge platform that serves a
 * module's default `fetch`:
 *
 * ```sh
 * COMET_API_TOKEN=secret deno serve --allow-env --allow-net src/edge.ts
 * ```
 *
 * Settings come from environment variables, read on the first request. A
 * missing `--allow-env` permission reads as every variable unset.
 *
 * | variable | meaning | default |
 * |----------|---------|---------|
 * | `COMET_API_TOKEN` | bearer token the push API requires | none: the API answers 503 |
 * | `COMET_HANDSHAKE_TIMEOUT` | time to authenticate, e.g. `5s` | `5s` |
 * | `COMET_HEARTBEAT_TIMEOUT` | silence allowed after a heartbeat, e.g. `8m` | `8m` |
 * | `COMET_MAX_BODY` | largest inbound frame body in bytes | `4096` |
 * | `COMET_QUEUE` | frames queued per connection before the slow policy | `128` |
 * | `COMET_SLOW` | full queue: `close` (op 6 and close) or `drop` | `close` |
 * | `COMET_LOG` | `debug`, `info`, `warn` or `error` | `info` |
 *
 * The push API is public at an edge, so it needs `COMET_API_TOKEN`: without
 * it every API request gets 503 and a warning is logged once. An invalid
 * value fails every request with 500 and logs the variable at fault once.
 *
 * One process (or isolate) is one hub: a push reaches the clients connected
 * to the same one. Do not run it with `deno serve --parallel`, and on a
 * platform that spreads an origin over several isolates, pushes reach only
 * the clients of the isolate that took the push request. On SIGTERM,
 * `deno serve` itself closes every WebSocket with 1001 ("Server shutting
 * down") and exits; goim clients reconnect.
 *
 * @example
 * ```ts ignore
 * import edge from "./edge.ts";
 *
 * Deno.serve({ port: 8000 }, edge.fetch);
 * ```
 *
 * @module
 */
import { ConfigError, parseDuration } from "./config.ts";
import { type CometHandler, createCometHandler } from "./handler.ts";
import { createLogger, type Logger, type LogLevel } from "./log.ts";
import { Comet } from "./server/comet.ts";
import type { SlowPolicy } from "./server/channel.ts";

/** Settings of the edge entry, from environment variables. Durations are in milliseconds. */
export interface EdgeConfig {
  /** Bearer token the push API requires; without one the API is off. */
  apiToken?: string;
  /** Time a connection has to authenticate. */
  handshakeTimeout: number;
  /** Silence allowed after a heartbeat. */
  heartbeatTimeout: number;
  /** Largest inbound frame body in bytes. */
  maxBody: number;
  /** Frames queued per connection before the slow policy applies. */
  queueSize: number;
  /** What a full queue does. */
  slow: SlowPolicy;
  /** Log level. */
  log: LogLevel;
}

/** How the edge entry looks a variable up: its value, or `undefined` when unset. */
export type EnvLookup = (name: string) => string | undefined;

const _LEVELS: readonly string[] = ["debug", "info", "warn", "error"];

function _int(name: string, text: string, min: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new ConfigError(`Invalid ${name}: must be an integer of at least ${min}: ${text}`);
  }
  return n;
}

function _duration(name: string, text: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    throw new ConfigError(`Invalid ${name}: ${(err as Error).message}`);
  }
}

/**
 * Reads the edge settings (see the module doc) through `env`.
 *
 * @throws {ConfigError} Naming the variable whose value is invalid.
 *
 * @example
 * ```ts
 * import { readEdgeConfig } from "./edge.ts";
 *
 * const env: Record<string, string> = { COMET_API_TOKEN: "secret", COMET_QUEUE: "16" };
 * const config = readEdgeConfig((name) => env[name]);
 * console.log(config.queueSize, config.heartbeatTimeout); // 16 480000
 * ```
 */
export function readEdgeConfig(env: EnvLookup): EdgeConfig {
  const get = (name: string) => {
    const v = env(name);
    return v === undefined || v.trim() === "" ? undefined : v;
  };
  const config: EdgeConfig = {
    handshakeTimeout: 5_000,
    heartbeatTimeout: 480_000,
    maxBody: 4096,
    queueSize: 128,
    slow: "close",
    log: "info",
  };
  const token = get("COMET_API_TOKEN");
  if (token !== undefined) config.apiToken = token;
  let v: string | undefined;
  if ((v = get("COMET_HANDSHAKE_TIMEOUT")) !== undefined) {
    config.handshakeTimeout = _duration("COMET_HANDSHAKE_TIMEOUT", v);
  }
  if ((v = get("COMET_HEARTBEAT_TIMEOUT")) !== undefined) {
    config.heartbeatTimeout = _duration("COMET_HEARTBEAT_TIMEOUT", v);
  }
  if ((v = get("COMET_MAX_BODY")) !== undefined) config.maxBody = _int("COMET_MAX_BODY", v, 0);
  if ((v = get("COMET_QUEUE")) !== undefined) config.queueSize = _int("COMET_QUEUE", v, 1);
  if ((v = get("COMET_SLOW")) !== undefined) {
    if (v !== "close" && v !== "drop") {
      throw new ConfigError(`Invalid COMET_SLOW: must be close or drop: ${v}`);
    }
    config.slow = v;
  }
  if ((v = get("COMET_LOG")) !== undefined) {
    if (!_LEVELS.includes(v)) {
      throw new ConfigError(`Invalid COMET_LOG: must be debug, info, warn or error: ${v}`);
    }
    config.log = v as LogLevel;
  }
  return config;
}

/**
 * `Deno.env.get` that never prompts and never throws: without the env
 * permission (or where the platform refuses it) a variable reads as unset.
 */
function _denoEnv(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function _envelope(status: number, message: string): Response {
  return Response.json({ code: -status, message, data: null }, { status });
}

/** The handler of the one hub, made on the first request; or why it could not be. */
let _edge: CometHandler | ConfigError | undefined;

function _start(): CometHandler | ConfigError {
  const log: Logger = createLogger({
    level: "info",
    write: (line) => console.error(line),
  });
  let config: EdgeConfig;
  try {
    config = readEdgeConfig(_denoEnv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.error("Comet is misconfigured; every request fails until it is fixed", { error: err });
    return err;
  }
  const logger = createLogger({ level: config.log, write: (line) => console.error(line) });
  const comet = new Comet({
    handshakeTimeout: config.handshakeTimeout,
    heartbeatTimeout: config.heartbeatTimeout,
    maxBody: config.maxBody,
    queueSize: config.queueSize,
    slow: config.slow,
    logger,
  });
  if (config.apiToken !== undefined) {
    return createCometHandler(comet, { api: { token: config.apiToken } });
  }
  // A public origin must not take pushes from anyone: no token, no API.
  logger.warn("COMET_API_TOKEN is not set; the push API answers 503 until it is");
  const sub = createCometHandler(comet, { api: false });
  return (request, info) => {
    if (request.headers.has("upgrade")) return sub(request, info);
    return _envelope(503, "Push API is disabled: set COMET_API_TOKEN to enable it");
  };
}

/**
 * The edge entry: serves `/sub` and the push API of one hub made on the
 * first request from the environment (see the module doc).
 */
const _entry: Deno.ServeDefaultExport = {
  fetch(request: Request, info: Deno.ServeHandlerInfo): Response | Promise<Response> {
    const edge = _edge ??= _start();
    if (edge instanceof ConfigError) {
      return _envelope(500, "Comet is misconfigured; see the server log");
    }
    return edge(request, info);
  },
};

/** The `fetch` entry `deno serve` and edge platforms call. */
export default _entry;
