import { DEFAULT_HTTP_LIMITS } from "./api/http_server.ts";
import type { JwtAlgorithm } from "./auth/jwt.ts";
import { isLoopback } from "./auth/open_guard.ts";
import { parseRedisUrl } from "./cluster/redis_client.ts";
import type { LogFormat, LogLevel } from "./log.ts";
import type { SlowPolicy } from "./server/channel.ts";
import { type CometLimits, DEFAULT_LIMITS } from "./server/comet.ts";
import type { ListenOptions } from "./transport/acceptor.ts";
import type { PkgHeaderSize } from "./transport/pkg.ts";

/**
 * How the `comet` command authenticates clients: `open` trusts the auth JSON
 * (goim's behaviour), `jwt` verifies a signed token, `webhook` asks the
 * application over HTTP.
 */
export type AuthMode = "open" | "jwt" | "webhook";

/** Settings of the `comet` command, after parsing flags, config file and environment. */
export interface CliConfig {
  /** TCP listen address, or false when off. */
  tcp: ListenOptions | false;
  /** WebSocket listen address, or false when off. */
  ws: ListenOptions | false;
  /** TLS (goim binary protocol) listen address, or false when off. */
  tcpTls: ListenOptions | false;
  /** Secure WebSocket listen address; undefined means 127.0.0.1:3103 when TLS is set. */
  wss?: ListenOptions | false;
  /** gtcp pkg listen address, or false when off. */
  pkg: ListenOptions | false;
  /** Bytes of the pkg length prefix. */
  pkgHeader: PkgHeaderSize;
  /** Path of the PEM certificate chain for TLS listeners. */
  tlsCert?: string;
  /** Path of the PEM private key for TLS listeners. */
  tlsKey?: string;
  /** Push API listen address, or false when off. */
  api: ListenOptions | false;
  /** Bearer token the push API requires, if any. */
  apiToken?: string;
  /** How long the push API waits for a request's line and headers, in ms. */
  apiHeaderTimeout: number;
  /** How long the push API waits for a request's body once its headers are in, in ms. */
  apiBodyTimeout: number;
  /** How long a kept-alive push API connection may wait for its next request, in ms. */
  apiIdleTimeout: number;
  /** Push API connections at once; `Infinity` for no limit. */
  apiMaxConnections: number;
  /** Handshake timeout in ms. */
  handshakeTimeout: number;
  /** Heartbeat timeout in ms. */
  heartbeatTimeout: number;
  /** Largest inbound body in bytes. */
  maxBody: number;
  /** Number of buckets. */
  buckets: number;
  /** Frames queued per connection. */
  queueSize: number;
  /** Socket writes in flight at most. */
  writeConcurrency: number;
  /** Write turns started per visit of the event loop. */
  writeBurst: number;
  /** Slow-consumer policy. */
  slow: SlowPolicy;
  /** Log level. */
  log: LogLevel;
  /** Log line format. */
  logFormat: LogFormat;
  /** User ids whose connections log every step. */
  traceMids: number[];
  /** How clients are authenticated. */
  auth: AuthMode;
  /** Whether open auth may listen on addresses other hosts can reach. */
  insecureOpenAuth: boolean;
  /** HS256 shared secret (`--auth jwt`). */
  jwtSecret?: string;
  /** Path of the PEM public key or certificate for RS256 and ES256 (`--auth jwt`). */
  jwtPublicKey?: string;
  /** JWT algorithm; default HS256 with a secret, RS256 with a public key. */
  jwtAlg?: JwtAlgorithm;
  /** Issuer tokens must name. */
  jwtIssuer?: string;
  /** Audience tokens must name. */
  jwtAudience?: string;
  /** The application's auth endpoint (`--auth webhook`). */
  webhookUrl?: string;
  /** How long one webhook auth call may take, in ms. */
  webhookTimeout?: number;
  /** Secret sent to the webhook as a bearer token. */
  webhookSecret?: string;
  /** Webhook calls in flight at most. */
  webhookConcurrency?: number;
  /** Connection and client limits; `Infinity` for none. */
  limits: Required<CometLimits>;
  /** Redis URL of the cluster; absent for a single node. */
  redis?: string;
  /** This node's id in the cluster. */
  nodeId?: string;
  /** Host name or address clients should use for this node. */
  advertise?: string;
  /** How long a session stays in the cluster registry without a heartbeat, in ms. */
  sessionTtl?: number;
  /** How often the node reports its counts to the cluster, in ms. */
  reportInterval?: number;
  /** Whether `--help` was asked for. */
  help: boolean;
}

/**
 * Thrown for a bad flag, value or config file; the CLI prints its message on
 * one line and exits with status 2.
 *
 * @example
 * ```ts
 * import { ConfigError, parseDuration } from "./config.ts";
 * try {
 *   parseDuration("5 parsecs");
 * } catch (err) {
 *   console.log(err instanceof RangeError); // true
 * }
 * console.log(new ConfigError("x").name); // "ConfigError"
 * ```
 */
export class ConfigError extends Error {
  /** Creates the error; the message names the flag. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

interface _Flag {
  name: string;
  /** The value's placeholder in the help; empty for a flag that takes no value. */
  arg: string;
  help: string;
  parse: (value: string, cfg: CliConfig) => void;
  /** May be given several times; flags on the command line replace the file's list. */
  reset?: (cfg: CliConfig) => void;
}

const _UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration such as `250ms`, `5s`, `1.5m` or `8m` into milliseconds.
 *
 * @throws {RangeError} When the text is not a positive number with a unit.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./config.ts";
 * console.log(parseDuration("8m")); // 480000
 * ```
 */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  const ms = m ? Number(m[1]) * _UNITS[m[2]!]! : NaN;
  if (!(ms > 0) || !Number.isFinite(ms)) {
    throw new RangeError(`Duration must be a positive number with a unit (ms, s, m, h): ${text}`);
  }
  return ms;
}

/**
 * Parses a listen address: `host:port`, `:port` (all interfaces), `[::1]:port`,
 * or `off`.
 *
 * @throws {RangeError} When the text is not such an address.
 *
 * @example
 * ```ts
 * import { parseAddr } from "./config.ts";
 * console.log(parseAddr("127.0.0.1:3101")); // { hostname: "127.0.0.1", port: 3101 }
 * ```
 */
export function parseAddr(text: string): ListenOptions | false {
  if (text === "off") return false;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new RangeError(`Address must be host:port or off: ${text}`);
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}

function _path(text: string): string {
  if (text.trim() === "") throw new RangeError("Must be a file path");
  return text;
}

function _int(text: string, min: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new RangeError(`Must be an integer of at least ${min}: ${text}`);
  }
  return n;
}

/** A limit: a positive integer, or 0 for none. */
function _limit(text: string): number {
  const n = _int(text, 0);
  return n === 0 ? Infinity : n;
}

/** A non-empty value on one line: it ends up in an HTTP header or a log line. */
function _line(text: string): string {
  if (text === "") throw new RangeError("Must not be empty");
  if (/[\r\n]/.test(text)) throw new RangeError("Must not contain line breaks");
  return text;
}

const _FLAGS: _Flag[] = [
  {
    name: "tcp",
    arg: "ADDR",
    help: "TCP listen address for goim clients (default 127.0.0.1:3101; off to disable)",
    parse: (v, c) => void (c.tcp = parseAddr(v)),
  },
  {
    name: "ws",
    arg: "ADDR",
    help: "WebSocket listen address, path /sub (default 127.0.0.1:3102; off to disable)",
    parse: (v, c) => void (c.ws = parseAddr(v)),
  },
  {
    name: "tls-cert",
    arg: "FILE",
    help: "PEM certificate chain; with --tls-key turns on --wss and --tcp-tls",
    parse: (v, c) => void (c.tlsCert = _path(v)),
  },
  {
    name: "tls-key",
    arg: "FILE",
    help: "PEM private key for the TLS listeners",
    parse: (v, c) => void (c.tlsKey = _path(v)),
  },
  {
    name: "tcp-tls",
    arg: "ADDR",
    help: "goim binary protocol over TLS (default off; needs --tls-cert/--tls-key)",
    parse: (v, c) => void (c.tcpTls = parseAddr(v)),
  },
  {
    name: "wss",
    arg: "ADDR",
    help: "WebSocket over TLS (default 127.0.0.1:3103 when TLS is configured)",
    parse: (v, c) => void (c.wss = parseAddr(v)),
  },
  {
    name: "pkg",
    arg: "ADDR",
    help: "gf gtcp length-prefixed packages (default off)",
    parse: (v, c) => void (c.pkg = parseAddr(v)),
  },
  {
    name: "pkg-header",
    arg: "N",
    help: "bytes of the pkg length prefix, 1 to 4 (default 2)",
    parse: (v, c) => {
      const n = _int(v, 1);
      if (n > 4) throw new RangeError(`Must be 1 to 4: ${v}`);
      c.pkgHeader = n as PkgHeaderSize;
    },
  },
  {
    name: "api",
    arg: "ADDR",
    help: "push API listen address (default 127.0.0.1:3111; off to disable)",
    parse: (v, c) => void (c.api = parseAddr(v)),
  },
  {
    name: "api-token",
    arg: "TOKEN",
    help: "bearer token the push API requires (env COMET_API_TOKEN)",
    parse: (v, c) => {
      if (v === "") throw new RangeError("Token must not be empty");
      c.apiToken = v;
    },
  },
  {
    name: "api-header-timeout",
    arg: "D",
    help: "push API: answer 408 and close when a request's headers take longer (default 10s)",
    parse: (v, c) => void (c.apiHeaderTimeout = parseDuration(v)),
  },
  {
    name: "api-body-timeout",
    arg: "D",
    help: "push API: answer 408 and close when a request's body takes longer (default 30s)",
    parse: (v, c) => void (c.apiBodyTimeout = parseDuration(v)),
  },
  {
    name: "api-idle-timeout",
    arg: "D",
    help: "push API: close a kept-alive connection idle this long (default 60s)",
    parse: (v, c) => void (c.apiIdleTimeout = parseDuration(v)),
  },
  {
    name: "api-max-connections",
    arg: "N",
    help:
      `push API connections at once; more get 503 (default ${DEFAULT_HTTP_LIMITS.maxConnections}; 0 = no limit)`,
    parse: (v, c) => void (c.apiMaxConnections = _limit(v)),
  },
  {
    name: "handshake-timeout",
    arg: "D",
    help: "close connections that do not authenticate in time (default 5s)",
    parse: (v, c) => void (c.handshakeTimeout = parseDuration(v)),
  },
  {
    name: "heartbeat-timeout",
    arg: "D",
    help: "close connections silent this long after a heartbeat (default 8m)",
    parse: (v, c) => void (c.heartbeatTimeout = parseDuration(v)),
  },
  {
    name: "max-body",
    arg: "BYTES",
    help: "largest inbound frame body (default 4096)",
    parse: (v, c) => void (c.maxBody = _int(v, 0)),
  },
  {
    name: "buckets",
    arg: "N",
    help: "connection shards (default 32)",
    parse: (v, c) => void (c.buckets = _int(v, 1)),
  },
  {
    name: "queue",
    arg: "N",
    help: "frames queued per connection before the slow policy applies (default 128)",
    parse: (v, c) => void (c.queueSize = _int(v, 1)),
  },
  {
    name: "write-concurrency",
    arg: "N",
    help: "socket writes in flight at most; the rest wait in line (default 128)",
    parse: (v, c) => void (c.writeConcurrency = _int(v, 1)),
  },
  {
    name: "write-burst",
    arg: "N",
    help: "write turns per event-loop visit; higher favours big rooms over the API (default 8)",
    parse: (v, c) => void (c.writeBurst = _int(v, 1)),
  },
  {
    name: "slow",
    arg: "close|drop",
    help: "full queue: send op 6 and close (default), or drop the message",
    parse: (v, c) => {
      if (v !== "close" && v !== "drop") throw new RangeError(`Must be close or drop: ${v}`);
      c.slow = v;
    },
  },
  {
    name: "redis",
    arg: "URL",
    help: "cluster through Redis: redis://[:password@]host:port[/db] (env COMET_REDIS)",
    parse: (v, c) => {
      parseRedisUrl(v);
      c.redis = v;
    },
  },
  {
    name: "node-id",
    arg: "ID",
    help: "this node's id in the cluster: letters, digits, . _ - (default random)",
    parse: (v, c) => {
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(v)) {
        throw new RangeError(`Must be 1 to 64 letters, digits, dots, underscores or dashes: ${v}`);
      }
      c.nodeId = v;
    },
  },
  {
    name: "advertise",
    arg: "ADDR",
    help: "host name or IP clients should use for this node (default the TCP host)",
    parse: (v, c) => {
      // A host, not host:port: the ports are the listeners' own.
      if (
        !/^(?:\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+|[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:.]*)$/.test(v)
      ) {
        throw new RangeError(`Must be a host name or IP address, without a port: ${v}`);
      }
      c.advertise = v.replace(/^\[(.*)\]$/, "$1");
    },
  },
  {
    name: "session-ttl",
    arg: "D",
    help: "how long the registry keeps a silent session (default 2x heartbeat timeout)",
    parse: (v, c) => void (c.sessionTtl = parseDuration(v)),
  },
  {
    name: "report-interval",
    arg: "D",
    help: "how often a node reports its online counts; 3 missed = gone (default 5s)",
    parse: (v, c) => void (c.reportInterval = parseDuration(v)),
  },
  {
    name: "log",
    arg: "LEVEL",
    help: "debug, info (default), warn or error",
    parse: (v, c) => {
      if (!["debug", "info", "warn", "error"].includes(v)) {
        throw new RangeError(`Must be debug, info, warn or error: ${v}`);
      }
      c.log = v as LogLevel;
    },
  },
  {
    name: "log-format",
    arg: "text|json",
    help: "log lines as text (default) or one JSON object per line",
    parse: (v, c) => {
      if (v !== "text" && v !== "json") throw new RangeError(`Must be text or json: ${v}`);
      c.logFormat = v;
    },
  },
  {
    name: "trace-mid",
    arg: "ID",
    help: "log every step of this user's connections at info (repeatable, or comma-separated)",
    reset: (c) => void (c.traceMids = []),
    parse: (v, c) => {
      for (const part of v.split(",")) {
        const id = part.trim();
        const mid = /^[1-9][0-9]{0,15}$/.test(id) ? Number(id) : NaN;
        if (!Number.isSafeInteger(mid)) throw new RangeError(`Must be a user id above 0: ${id}`);
        if (!c.traceMids.includes(mid)) c.traceMids.push(mid);
      }
    },
  },
  {
    name: "auth",
    arg: "open|jwt|webhook",
    help: "client auth: trust the auth JSON (default), verify a JWT, or ask a webhook",
    parse: (v, c) => {
      if (v !== "open" && v !== "jwt" && v !== "webhook") {
        throw new RangeError(`Must be open, jwt or webhook: ${v}`);
      }
      c.auth = v;
    },
  },
  {
    name: "insecure-open-auth",
    arg: "",
    help: "let open auth listen on addresses other hosts can reach",
    parse: (v, c) => {
      if (v !== "true" && v !== "false") throw new RangeError(`Must be true or false: ${v}`);
      c.insecureOpenAuth = v === "true";
    },
  },
  {
    name: "jwt-secret",
    arg: "SECRET",
    help: "HS256 shared secret, at least 32 bytes (env COMET_JWT_SECRET)",
    parse: (v, c) => {
      const bytes = new TextEncoder().encode(v).length;
      // RFC 7518 section 3.2: an HS256 key shorter than the hash is not allowed.
      if (bytes < 32) throw new RangeError(`Must be at least 32 bytes: ${bytes}`);
      c.jwtSecret = v;
    },
  },
  {
    name: "jwt-public-key",
    arg: "FILE",
    help: "PEM public key or certificate verifying RS256 or ES256 tokens",
    parse: (v, c) => void (c.jwtPublicKey = _path(v)),
  },
  {
    name: "jwt-alg",
    arg: "HS256|RS256|ES256",
    help: "token algorithm (default HS256 with a secret, RS256 with a public key)",
    parse: (v, c) => {
      if (v !== "HS256" && v !== "RS256" && v !== "ES256") {
        throw new RangeError(`Must be HS256, RS256 or ES256: ${v}`);
      }
      c.jwtAlg = v;
    },
  },
  {
    name: "jwt-issuer",
    arg: "ISS",
    help: "issuer (iss) tokens must name",
    parse: (v, c) => void (c.jwtIssuer = _line(v)),
  },
  {
    name: "jwt-audience",
    arg: "AUD",
    help: "audience (aud) tokens must name",
    parse: (v, c) => void (c.jwtAudience = _line(v)),
  },
  {
    name: "webhook-url",
    arg: "URL",
    help: "the application's auth endpoint, http or https",
    parse: (v, c) => {
      let url: URL;
      try {
        url = new URL(v);
      } catch {
        throw new RangeError(`Must be an http or https URL: ${v}`);
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new RangeError(`Must be an http or https URL: ${v}`);
      }
      if (url.username !== "" || url.password !== "") {
        throw new RangeError("Must not carry credentials: use --webhook-secret");
      }
      c.webhookUrl = v;
    },
  },
  {
    name: "webhook-timeout",
    arg: "D",
    help: "how long one webhook auth call may take, waiting included (default 3s)",
    parse: (v, c) => void (c.webhookTimeout = parseDuration(v)),
  },
  {
    name: "webhook-secret",
    arg: "SECRET",
    help: "sent to the webhook as a bearer token (env COMET_WEBHOOK_SECRET)",
    parse: (v, c) => void (c.webhookSecret = _line(v)),
  },
  {
    name: "webhook-concurrency",
    arg: "N",
    help: "webhook calls in flight at most (default 64)",
    parse: (v, c) => void (c.webhookConcurrency = _int(v, 1)),
  },
  {
    name: "max-connections",
    arg: "N",
    help:
      `connections at once; more are refused at accept (default ${DEFAULT_LIMITS.maxConnections}, lowered to fit ulimit -n; 0 = no limit)`,
    parse: (v, c) => void (c.limits.maxConnections = _limit(v)),
  },
  {
    name: "max-connections-per-ip",
    arg: "N",
    help:
      `connections at once from one IP (default ${DEFAULT_LIMITS.maxConnectionsPerIp}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.maxConnectionsPerIp = _limit(v)),
  },
  {
    name: "connect-rate",
    arg: "N",
    help:
      `new connections per second from one IP (default ${DEFAULT_LIMITS.connectRate}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.connectRate = _limit(v)),
  },
  {
    name: "max-auth-attempts",
    arg: "N",
    help:
      `refused auths from one IP in a minute that bar it for a minute (default ${DEFAULT_LIMITS.maxAuthAttempts}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.maxAuthAttempts = _limit(v)),
  },
  {
    name: "upstream-rate",
    arg: "N",
    help:
      `upstream messages (op 4) per second per connection (default ${DEFAULT_LIMITS.upstreamRate}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.upstreamRate = _limit(v)),
  },
  {
    name: "max-rooms",
    arg: "N",
    help: `rooms with members on this node (default ${DEFAULT_LIMITS.maxRooms}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.maxRooms = _limit(v)),
  },
];

/** The `--help` text. */
export function usage(): string {
  const lines = [
    "Usage: comet [flags]",
    "",
    "Comet: a goim-compatible push server. Flags may also come from a JSON file",
    "given with --config FILE (keys are the flag names without dashes).",
    "",
  ];
  const rows = [
    ..._FLAGS.map((f) => [f.arg === "" ? `--${f.name}` : `--${f.name} ${f.arg}`, f.help]),
    ["--config FILE", "read flags from a JSON file; command-line flags win"],
    ["--help", "print this help"],
  ];
  const width = Math.max(...rows.map((r) => r[0]!.length)) + 2;
  for (const [flag, help] of rows) lines.push(`  ${flag!.padEnd(width)}${help}`);
  lines.push("", "Durations read 250ms, 5s, 8m or 1h.");
  return lines.join("\n");
}

function _defaults(): CliConfig {
  return {
    tcp: { hostname: "127.0.0.1", port: 3101 },
    ws: { hostname: "127.0.0.1", port: 3102 },
    tcpTls: false,
    pkg: false,
    pkgHeader: 2,
    api: { hostname: "127.0.0.1", port: 3111 },
    apiHeaderTimeout: DEFAULT_HTTP_LIMITS.headerTimeout,
    apiBodyTimeout: DEFAULT_HTTP_LIMITS.bodyTimeout,
    apiIdleTimeout: DEFAULT_HTTP_LIMITS.idleTimeout,
    apiMaxConnections: DEFAULT_HTTP_LIMITS.maxConnections,
    handshakeTimeout: 5_000,
    heartbeatTimeout: 480_000,
    maxBody: 4096,
    buckets: 32,
    queueSize: 128,
    writeConcurrency: 128,
    writeBurst: 8,
    slow: "close",
    log: "info",
    logFormat: "text",
    traceMids: [],
    auth: "open",
    insecureOpenAuth: false,
    limits: { ...DEFAULT_LIMITS },
    help: false,
  };
}

function _apply(cfg: CliConfig, name: string, value: string, origin: string): void {
  const flag = _FLAGS.find((f) => f.name === name);
  if (!flag) throw new ConfigError(`Unknown ${origin}: ${name}`);
  try {
    flag.parse(value, cfg);
  } catch (err) {
    throw new ConfigError(`Invalid value for --${name}: ${(err as Error).message}`);
  }
}

/** The flags that only mean something with one auth mode, in the order they are reported. */
const _AUTH_FLAGS: [keyof CliConfig, string, AuthMode][] = [
  ["jwtSecret", "jwt-secret", "jwt"],
  ["jwtPublicKey", "jwt-public-key", "jwt"],
  ["jwtAlg", "jwt-alg", "jwt"],
  ["jwtIssuer", "jwt-issuer", "jwt"],
  ["jwtAudience", "jwt-audience", "jwt"],
  ["webhookUrl", "webhook-url", "webhook"],
  ["webhookTimeout", "webhook-timeout", "webhook"],
  ["webhookSecret", "webhook-secret", "webhook"],
  ["webhookConcurrency", "webhook-concurrency", "webhook"],
];

/** Refuses auth settings that do not go together; fills in what the environment gives. */
function _checkAuth(cfg: CliConfig, env: ((name: string) => string | undefined) | undefined) {
  for (const [field, flag, mode] of _AUTH_FLAGS) {
    if (cfg[field] !== undefined && cfg.auth !== mode) {
      throw new ConfigError(`--${flag} needs --auth ${mode}`);
    }
  }
  if (cfg.insecureOpenAuth && cfg.auth !== "open") {
    throw new ConfigError(`--insecure-open-auth is for --auth open, not --auth ${cfg.auth}`);
  }
  if (cfg.auth === "jwt") {
    // Secrets come from the environment only where they are used, and below an explicit key.
    const secret = env?.("COMET_JWT_SECRET");
    if (secret && cfg.jwtSecret === undefined && cfg.jwtPublicKey === undefined) {
      _apply(cfg, "jwt-secret", secret, "variable");
    }
    if (cfg.jwtSecret !== undefined && cfg.jwtPublicKey !== undefined) {
      throw new ConfigError("--jwt-secret and --jwt-public-key exclude each other: give one");
    }
    if (cfg.jwtSecret === undefined && cfg.jwtPublicKey === undefined) {
      throw new ConfigError(
        "--auth jwt needs a key: --jwt-secret (or COMET_JWT_SECRET) or --jwt-public-key FILE",
      );
    }
    cfg.jwtAlg ??= cfg.jwtSecret !== undefined ? "HS256" : "RS256";
    if (cfg.jwtAlg === "HS256" && cfg.jwtSecret === undefined) {
      throw new ConfigError("--jwt-alg HS256 needs --jwt-secret, not a public key");
    }
    if (cfg.jwtAlg !== "HS256" && cfg.jwtPublicKey === undefined) {
      throw new ConfigError(`--jwt-alg ${cfg.jwtAlg} needs --jwt-public-key, not a secret`);
    }
  }
  if (cfg.auth === "webhook") {
    const secret = env?.("COMET_WEBHOOK_SECRET");
    if (secret && cfg.webhookSecret === undefined) {
      _apply(cfg, "webhook-secret", secret, "variable");
    }
    if (cfg.webhookUrl === undefined) throw new ConfigError("--auth webhook needs --webhook-url");
  }
}

/** `host:port`, with brackets around an IPv6 literal. */
function _hostPort(addr: ListenOptions): string {
  const host = addr.hostname ?? "127.0.0.1";
  return `${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
}

/**
 * Refuses a configuration that would expose what must not be exposed: open
 * auth (any client may claim any user) on a client listener other hosts
 * can reach, unless `--insecure-open-auth`; and the push API without a
 * token on such an address. The `comet` command runs it after
 * {@linkcode parseConfig}.
 *
 * @throws {ConfigError} Naming the address and the way out.
 *
 * @example
 * ```ts
 * import { checkExposure, ConfigError, parseConfig } from "./config.ts";
 *
 * checkExposure(parseConfig(["--tcp", "127.0.0.1:3101"])); // loopback: fine
 * try {
 *   checkExposure(parseConfig(["--tcp", ":3101"]));
 * } catch (err) {
 *   console.log(err instanceof ConfigError); // true
 * }
 * ```
 */
export function checkExposure(cfg: CliConfig): void {
  if (cfg.auth === "open" && !cfg.insecureOpenAuth) {
    const tls = cfg.tlsCert !== undefined;
    const listeners = [
      cfg.tcp,
      cfg.ws,
      tls && cfg.tcpTls,
      tls && (cfg.wss ?? { hostname: "127.0.0.1", port: 3103 }),
      cfg.pkg,
    ];
    for (const addr of listeners) {
      if (addr && !isLoopback(addr.hostname ?? "127.0.0.1")) {
        throw new ConfigError(
          `Open auth lets any client claim any user; refusing to listen on ${
            _hostPort(addr)
          }: use --auth jwt or --auth webhook, or pass --insecure-open-auth`,
        );
      }
    }
  }
  if (cfg.api && cfg.apiToken === undefined && !isLoopback(cfg.api.hostname ?? "127.0.0.1")) {
    throw new ConfigError(
      `A push API without a token lets anyone push to every client; refusing to listen on ${
        _hostPort(cfg.api)
      }: set --api-token (or COMET_API_TOKEN)`,
    );
  }
}

/** Options for {@linkcode parseConfig}. */
export interface ParseConfigOptions {
  /** Environment lookup. Default: none. */
  env?: (name: string) => string | undefined;
  /** Reads a `--config` file. Default: `Deno.readTextFileSync`. */
  readFile?: (path: string) => string;
}

/**
 * Parses command-line flags (`--name value` or `--name=value`; a flag without
 * a value such as `--insecure-open-auth` stands alone), an optional
 * `--config FILE` of the same names without dashes (such a flag is `true`
 * there, a repeatable one may be an array), and the environment:
 * `COMET_API_TOKEN`, `COMET_REDIS`, and with the matching `--auth`,
 * `COMET_JWT_SECRET` and `COMET_WEBHOOK_SECRET`.
 * Precedence: flags, then the file, then the environment, then defaults.
 *
 * @throws {ConfigError} Naming the bad flag, value or file.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const cfg = parseConfig(["--tcp", ":3101", "--heartbeat-timeout=1m"]);
 * console.log(cfg.heartbeatTimeout); // 60000
 * ```
 */
export function parseConfig(args: readonly string[], options: ParseConfigOptions = {}): CliConfig {
  const cfg = _defaults();
  const flags: [string, string][] = [];
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") {
      cfg.help = true;
      continue;
    }
    const m = /^--([a-z][a-z-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new ConfigError(`Unexpected argument: ${arg}`);
    const name = m[1]!;
    if (name !== "config" && !_FLAGS.some((f) => f.name === name)) {
      throw new ConfigError(`Unknown flag: --${name}`);
    }
    let value = m[2];
    if (value === undefined) {
      if (_FLAGS.some((f) => f.name === name && f.arg === "")) value = "true";
      else if (i + 1 >= args.length) throw new ConfigError(`Missing value for --${name}`);
      else value = args[++i]!;
    }
    if (name === "config") file = value;
    else flags.push([name, value]);
  }
  const token = options.env?.("COMET_API_TOKEN");
  if (token) _apply(cfg, "api-token", token, "variable");
  // The URL may carry a password, which a flag would show to anyone listing processes.
  const redis = options.env?.("COMET_REDIS");
  if (redis) _apply(cfg, "redis", redis, "variable");
  if (file !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse((options.readFile ?? Deno.readTextFileSync)(file));
    } catch (err) {
      throw new ConfigError(`Cannot read config file ${file}: ${(err as Error).message}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`Config file ${file} is not a JSON object`);
    }
    for (const [key, value] of Object.entries(parsed)) {
      const flag = _FLAGS.find((f) => f.name === key);
      if (!flag) throw new ConfigError(`Unknown config key in ${file}: ${key}`);
      if (typeof value === "boolean" && flag.arg === "") {
        _apply(cfg, key, String(value), `config key in ${file}`);
        continue;
      }
      const values = Array.isArray(value) && flag.reset ? value : [value];
      for (const v of values) {
        if (typeof v !== "string" && typeof v !== "number") {
          throw new ConfigError(`Config key ${key} must be a string or number`);
        }
        _apply(cfg, key, String(v), `config key in ${file}`);
      }
    }
  }
  const replaced = new Set<string>();
  for (const [name, value] of flags) {
    const flag = _FLAGS.find((f) => f.name === name);
    if (flag?.reset && !replaced.has(name)) {
      replaced.add(name);
      flag.reset(cfg);
    }
    _apply(cfg, name, value, "flag");
  }
  _checkAuth(cfg, options.env);
  if (cfg.traceMids.length > 0 && (cfg.log === "warn" || cfg.log === "error")) {
    throw new ConfigError(`--trace-mid logs at info: it needs --log info or debug, not ${cfg.log}`);
  }
  if ((cfg.tlsCert === undefined) !== (cfg.tlsKey === undefined)) {
    throw new ConfigError("TLS needs both --tls-cert and --tls-key");
  }
  if (cfg.tlsCert === undefined && (cfg.tcpTls || cfg.wss)) {
    throw new ConfigError(`--${cfg.tcpTls ? "tcp-tls" : "wss"} needs --tls-cert and --tls-key`);
  }
  if (cfg.redis === undefined) {
    if (cfg.sessionTtl !== undefined) throw new ConfigError("--session-ttl needs --redis");
    if (cfg.reportInterval !== undefined) throw new ConfigError("--report-interval needs --redis");
  }
  return cfg;
}
