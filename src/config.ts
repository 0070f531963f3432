import { parseRedisUrl } from "./cluster/redis_client.ts";
import type { LogLevel } from "./log.ts";
import type { SlowPolicy } from "./server/channel.ts";
import type { ListenOptions } from "./transport/acceptor.ts";
import type { PkgHeaderSize } from "./transport/pkg.ts";

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
  /** Slow-consumer policy. */
  slow: SlowPolicy;
  /** Log level. */
  log: LogLevel;
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
  arg: string;
  help: string;
  parse: (value: string, cfg: CliConfig) => void;
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
    ..._FLAGS.map((f) => [`--${f.name} ${f.arg}`, f.help]),
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
    handshakeTimeout: 5_000,
    heartbeatTimeout: 480_000,
    maxBody: 4096,
    buckets: 32,
    queueSize: 128,
    slow: "close",
    log: "info",
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

/** Options for {@linkcode parseConfig}. */
export interface ParseConfigOptions {
  /** Environment lookup. Default: none. */
  env?: (name: string) => string | undefined;
  /** Reads a `--config` file. Default: `Deno.readTextFileSync`. */
  readFile?: (path: string) => string;
}

/**
 * Parses command-line flags (`--name value` or `--name=value`), an optional
 * `--config FILE` of the same names without dashes, `COMET_API_TOKEN` and
 * `COMET_REDIS`.
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
      if (i + 1 >= args.length) throw new ConfigError(`Missing value for --${name}`);
      value = args[++i]!;
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
      if (typeof value !== "string" && typeof value !== "number") {
        throw new ConfigError(`Config key ${key} must be a string or number`);
      }
      _apply(cfg, key, String(value), `config key in ${file}`);
    }
  }
  for (const [name, value] of flags) _apply(cfg, name, value, "flag");
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
