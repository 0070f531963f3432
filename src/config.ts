import { DEFAULT_HTTP_LIMITS } from "./api/http_server.ts";
import type { JwtAlgorithm } from "./auth/jwt.ts";
import { parseRedisUrl } from "./cluster/redis_client.ts";
import { AUTH_FLAGS, checkCombinations } from "./config_checks.ts";
import { ConfigError } from "./config_error.ts";
import { envName, SettingNames } from "./config_names.ts";
import type { LogFormat, LogLevel } from "./log.ts";
import { DEFAULT_BACKLOG } from "./server/backlog.ts";
import { DEFAULT_WRITE_TIMEOUT, type SlowPolicy } from "./server/channel.ts";
import { type CometLimits, DEFAULT_LIMITS } from "./server/comet.ts";
import type { ListenOptions } from "./transport/acceptor.ts";
import type { PkgHeaderSize } from "./transport/pkg.ts";

export { checkExposure } from "./config_checks.ts";
export { ConfigError } from "./config_error.ts";
export { envName } from "./config_names.ts";

/**
 * How the `comet` command authenticates clients: `open` trusts the auth JSON
 * (goim's behaviour), `jwt` verifies a signed token, `webhook` asks the
 * application over HTTP.
 */
export type AuthMode = "open" | "jwt" | "webhook";

/**
 * Settings of the `comet` command, after parsing flags, config file and
 * environment; the edge entry reads the same from the environment alone.
 */
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
  /** How long a socket may refuse writes, with a full queue waiting, before it is slow; in ms. */
  writeTimeout: number;
  /** Bytes all queues and room logs may hold; Infinity for no cap. */
  maxBacklog: number;
  /** Bytes one room's log may hold within one bucket; Infinity for no cap. */
  roomBacklog: number;
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

const _SIZES: Record<string, number> = { "": 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 };

/**
 * A size in bytes: an integer with an optional binary unit (`512`, `64k`,
 * `32MiB`, `1g`); 0 for no cap.
 */
function _size(text: string): number {
  const m = /^(\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(text.trim());
  const n = m ? Number(m[1]) * _SIZES[(m[2] ?? "").toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`Must be a size in bytes such as 65536, 64KiB or 32MiB: ${text}`);
  }
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
    help: "frames pushed to one connection alone queued before the slow policy (default 128)",
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
    help: "slow connection: send op 6 and close (default), or drop what passes its queue",
    parse: (v, c) => {
      if (v !== "close" && v !== "drop") throw new RangeError(`Must be close or drop: ${v}`);
      c.slow = v;
    },
  },
  {
    name: "write-timeout",
    arg: "D",
    help: "a socket that refuses writes this long with a full queue waiting is slow (default 2s)",
    parse: (v, c) => void (c.writeTimeout = parseDuration(v)),
  },
  {
    name: "max-backlog",
    arg: "BYTES",
    help: "bytes all queues and room logs may hold; past it pushes get 429 (default 256MiB)",
    parse: (v, c) => void (c.maxBacklog = _size(v)),
  },
  {
    name: "room-backlog",
    arg: "BYTES",
    help: "bytes one room's log may hold per bucket; past it pushes get 429 (default 32MiB)",
    parse: (v, c) => void (c.roomBacklog = _size(v)),
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
    "given with --config FILE (keys are the flag names without dashes), and from",
    "the environment: COMET_ and the name in capitals, dashes as underscores",
    "(--max-body is COMET_MAX_BODY; a switch reads 1 or 0). Flags win over the",
    "file, which wins over the environment.",
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

/** A setting of the `comet` command, as {@linkcode listSettings} lists it. */
export interface SettingInfo {
  /** The flag, e.g. `--jwt-secret`. */
  flag: string;
  /** Its environment variable, e.g. `COMET_JWT_SECRET`. */
  variable: string;
  /** The value's placeholder in the help, e.g. `SECRET`; empty for a switch. */
  arg: string;
  /** What it does, as `--help` says. */
  help: string;
}

/**
 * Every setting of the `comet` command, in the order of `--help`, with its
 * environment variable (see {@linkcode envName}). `--config` and `--help`
 * are not settings and have no variable.
 *
 * @example
 * ```ts
 * import { listSettings } from "./config.ts";
 * const jwt = listSettings().find((s) => s.flag === "--jwt-secret");
 * console.log(jwt?.variable); // "COMET_JWT_SECRET"
 * ```
 */
export function listSettings(): SettingInfo[] {
  return _FLAGS.map((f) => ({
    flag: `--${f.name}`,
    variable: envName(f.name),
    arg: f.arg,
    help: f.help,
  }));
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
    writeTimeout: DEFAULT_WRITE_TIMEOUT,
    maxBacklog: DEFAULT_BACKLOG.maxBytes,
    roomBacklog: DEFAULT_BACKLOG.maxRoomBytes,
    log: "info",
    logFormat: "text",
    traceMids: [],
    auth: "open",
    insecureOpenAuth: false,
    limits: { ...DEFAULT_LIMITS },
    help: false,
  };
}

/** What one source gave for one flag, and how messages name it there. */
interface _Given {
  flag: _Flag;
  values: string[];
  /** `--name` for a flag or a config key, the variable for the environment. */
  label: string;
}

/** Applies one source's settings; a repeatable flag's list replaces the sources' below. */
function _applyGiven(cfg: CliConfig, given: readonly _Given[], names: SettingNames): void {
  const reset = new Set<_Flag>();
  for (const { flag, values, label } of given) {
    if (flag.reset && !reset.has(flag)) {
      reset.add(flag);
      flag.reset(cfg);
    }
    for (const value of values) {
      try {
        flag.parse(value, cfg);
      } catch (err) {
        throw new ConfigError(`Invalid value for ${label}: ${(err as Error).message}`);
      }
    }
    names.given(flag.name, label);
  }
}

/** How a command looks a variable up: its value, or `undefined` when unset. */
export type EnvLookup = (name: string) => string | undefined;

/** Every flag's variable that is set; empty or blank reads as unset. */
function _fromEnv(env: EnvLookup): _Given[] {
  const given: _Given[] = [];
  for (const flag of _FLAGS) {
    const label = envName(flag.name);
    const raw = env(label);
    if (raw === undefined || raw.trim() === "") continue;
    let value = raw;
    if (flag.arg === "") {
      // A switch: `1` is what shells and platform dashboards usually set.
      const word = raw.trim().toLowerCase();
      if (word === "1" || word === "true") value = "true";
      else if (word === "0" || word === "false") value = "false";
      else throw new ConfigError(`Invalid value for ${label}: Must be 1, 0, true or false: ${raw}`);
    }
    given.push({ flag, values: [value], label });
  }
  return given;
}

/** The auth mode a flag belongs to; open auth's switch counts as one. */
const _MODE_OF = new Map<string, AuthMode>([
  ...AUTH_FLAGS.map(([, flag, mode]) => [flag, mode] as const),
  ["insecure-open-auth", "open"],
]);

const _JWT_KEYS = ["jwt-secret", "jwt-public-key"];

/**
 * Applies the sources from the lowest, the environment, to the highest,
 * the flags, then checks the whole.
 */
function _resolve(
  env: readonly _Given[],
  file: readonly _Given[],
  flags: readonly _Given[],
  names: SettingNames,
): CliConfig {
  const cfg = _defaults();
  // A variable of one auth mode counts only under that mode, so that one
  // environment may hold every mode's secrets: it waits until the file and
  // the flags have settled the mode.
  const scoped = env.filter((g) => _MODE_OF.has(g.flag.name));
  _applyGiven(cfg, env.filter((g) => !_MODE_OF.has(g.flag.name)), names);
  _applyGiven(cfg, file, names);
  _applyGiven(cfg, flags, names);
  const keyAbove = _JWT_KEYS.some((k) => names.givenAbove(k));
  _applyGiven(
    cfg,
    scoped.filter((g) =>
      _MODE_OF.get(g.flag.name) === cfg.auth && !names.givenAbove(g.flag.name) &&
      // A key given above replaces the environment's, of either kind.
      !(keyAbove && _JWT_KEYS.includes(g.flag.name))
    ),
    names,
  );
  checkCombinations(cfg, names);
  return cfg;
}

/**
 * Reads the settings of the `comet` command from the environment alone,
 * through the same table and checks as {@linkcode parseConfig}: every
 * flag's variable (see {@linkcode envName}), a switch as `1` or `0`, an
 * empty variable as unset. Messages name the variables. The edge entry
 * (`src/edge.ts`) reads its settings with it.
 *
 * @throws {ConfigError} Naming the variable whose value is invalid, or the
 * variables that do not go together.
 *
 * @example
 * ```ts
 * import { parseEnvConfig } from "./config.ts";
 *
 * const env: Record<string, string> = { COMET_QUEUE: "16", COMET_UPSTREAM_RATE: "0" };
 * const cfg = parseEnvConfig((name) => env[name]);
 * console.log(cfg.queueSize, cfg.limits.upstreamRate); // 16 Infinity
 * ```
 */
export function parseEnvConfig(env: EnvLookup): CliConfig {
  return _resolve(_fromEnv(env), [], [], new SettingNames("env"));
}

/** Options for {@linkcode parseConfig}. */
export interface ParseConfigOptions {
  /** Environment lookup for every flag's variable (see {@linkcode envName}). Default: none. */
  env?: EnvLookup;
  /** Reads a `--config` file. Default: `Deno.readTextFileSync`. */
  readFile?: (path: string) => string;
}

/**
 * Parses command-line flags (`--name value` or `--name=value`; a flag without
 * a value such as `--insecure-open-auth` stands alone), an optional
 * `--config FILE` of the same names without dashes (such a flag is `true`
 * there, a repeatable one may be an array), and the environment as
 * {@linkcode parseEnvConfig} reads it. Precedence: flags, then the file,
 * then the environment, then defaults. A variable that belongs to an auth
 * mode other than the one chosen is ignored (`COMET_JWT_SECRET` under
 * `--auth webhook`), as is the environment's JWT key when the file or a
 * flag gives one.
 *
 * @throws {ConfigError} Naming the bad flag, variable, value or file.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const cfg = parseConfig(["--tcp", ":3101", "--heartbeat-timeout=1m"]);
 * console.log(cfg.heartbeatTimeout); // 60000
 * ```
 */
export function parseConfig(args: readonly string[], options: ParseConfigOptions = {}): CliConfig {
  const flags: _Given[] = [];
  let help = false;
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    const m = /^--([a-z][a-z-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new ConfigError(`Unexpected argument: ${arg}`);
    const name = m[1]!;
    const flag = _FLAGS.find((f) => f.name === name);
    if (name !== "config" && !flag) throw new ConfigError(`Unknown flag: --${name}`);
    let value = m[2];
    if (value === undefined) {
      if (flag?.arg === "") value = "true";
      else if (i + 1 >= args.length) throw new ConfigError(`Missing value for --${name}`);
      else value = args[++i]!;
    }
    if (!flag) file = value;
    else flags.push({ flag, values: [value], label: `--${name}` });
  }
  const env = options.env ? _fromEnv(options.env) : [];
  const fromFile = file === undefined ? [] : _fromFile(file, options.readFile);
  const cfg = _resolve(env, fromFile, flags, new SettingNames("flag"));
  cfg.help = help;
  return cfg;
}

/** The settings of a `--config` file. */
function _fromFile(
  file: string,
  readFile: (path: string) => string = Deno.readTextFileSync,
): _Given[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFile(file));
  } catch (err) {
    throw new ConfigError(`Cannot read config file ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`Config file ${file} is not a JSON object`);
  }
  const given: _Given[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    const flag = _FLAGS.find((f) => f.name === key);
    if (!flag) throw new ConfigError(`Unknown config key in ${file}: ${key}`);
    const values: unknown[] = Array.isArray(value) && flag.reset ? value : [value];
    given.push({
      flag,
      label: `--${key}`,
      values: values.map((v) => {
        if (typeof v === "boolean" && flag.arg === "") return String(v);
        if (typeof v !== "string" && typeof v !== "number") {
          throw new ConfigError(`Config key ${key} must be a string or number`);
        }
        return String(v);
      }),
    });
  }
  return given;
}
