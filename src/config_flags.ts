/**
 * The table of the `comet` command's flags: each flag's name, placeholder,
 * help (its default written from {@linkcode DEFAULTS}) and how its value is
 * read. `--help`, the config file, the environment and the edge entry all
 * go through it.
 *
 * @module
 */
import type { CliConfig } from "./cli_config.ts";
import {
  formatAddr,
  formatDuration,
  formatSize,
  parseAddr,
  parseDuration,
  readInt,
  readLimit,
  readLine,
  readPath,
  readSeconds,
  readSize,
  readWorkers,
} from "./config_values.ts";
import { DEFAULTS } from "./defaults.ts";
import { parseRedisUrl } from "./cluster/redis_url.ts";
import type { LogLevel } from "./log.ts";
import type { PkgHeaderSize } from "./transport/pkg.ts";
import { TrustedProxies } from "./server/trusted_proxies.ts";

/** @internal One flag of the `comet` command: its name, help and how its value is read. */
export interface Flag {
  /** The name without dashes; the config key and, in capitals, the variable. */
  name: string;
  /** The value's placeholder in the help; empty for a flag that takes no value. */
  arg: string;
  /** What it does, with its default, as `--help` says. */
  help: string;
  /** Reads one value into `cfg`; throws a RangeError naming what is wrong. */
  parse: (value: string, cfg: CliConfig) => void;
  /** May be given several times; flags on the command line replace the file's list. */
  reset?: (cfg: CliConfig) => void;
}

/** @internal Every flag of the `comet` command, in the order of `--help`. */
export const FLAGS: readonly Flag[] = [
  {
    name: "tcp",
    arg: "ADDR",
    help: `TCP listen address for goim clients (default ${
      formatAddr(DEFAULTS.tcp)
    }; off to disable)`,
    parse: (v, c) => void (c.tcp = parseAddr(v)),
  },
  {
    name: "ws",
    arg: "ADDR",
    help: `WebSocket listen address, path /sub (default ${
      formatAddr(DEFAULTS.ws)
    }; off to disable)`,
    parse: (v, c) => void (c.ws = parseAddr(v)),
  },
  {
    name: "tls-cert",
    arg: "FILE",
    help: "PEM certificate chain for the TLS listeners (--wss, --tcp-tls)",
    parse: (v, c) => void (c.tlsCert = readPath(v)),
  },
  {
    name: "tls-key",
    arg: "FILE",
    help: "PEM private key; with --tls-cert turns on --wss",
    parse: (v, c) => void (c.tlsKey = readPath(v)),
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
    help: `WebSocket over TLS (default ${formatAddr(DEFAULTS.wss)} when TLS is configured)`,
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
    help: `bytes of the pkg length prefix, 1 to 4 (default ${DEFAULTS.pkgHeader})`,
    parse: (v, c) => {
      const n = readInt(v, 1);
      if (n > 4) throw new RangeError(`Must be 1 to 4: ${v}`);
      c.pkgHeader = n as PkgHeaderSize;
    },
  },
  {
    name: "api",
    arg: "ADDR",
    help: `push API listen address (default ${formatAddr(DEFAULTS.api)}; off to disable)`,
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
    help: `push API: answer 408 and close when a request's headers take longer (default ${
      formatDuration(DEFAULTS.apiHeaderTimeout)
    })`,
    parse: (v, c) => void (c.apiHeaderTimeout = parseDuration(v)),
  },
  {
    name: "api-body-timeout",
    arg: "D",
    help: `push API: answer 408 and close when a request's body takes longer (default ${
      formatDuration(DEFAULTS.apiBodyTimeout)
    })`,
    parse: (v, c) => void (c.apiBodyTimeout = parseDuration(v)),
  },
  {
    name: "api-idle-timeout",
    arg: "D",
    help: `push API: close a kept-alive connection idle this long (default ${
      formatDuration(DEFAULTS.apiIdleTimeout)
    })`,
    parse: (v, c) => void (c.apiIdleTimeout = parseDuration(v)),
  },
  {
    name: "api-max-connections",
    arg: "N",
    help:
      `push API connections at once; more get 503 (default ${DEFAULTS.apiMaxConnections}; 0 = no limit)`,
    parse: (v, c) => void (c.apiMaxConnections = readLimit(v)),
  },
  {
    name: "handshake-timeout",
    arg: "D",
    help: `close connections that do not authenticate in time (default ${
      formatDuration(DEFAULTS.handshakeTimeout)
    })`,
    parse: (v, c) => void (c.handshakeTimeout = parseDuration(v)),
  },
  {
    name: "heartbeat-timeout",
    arg: "D",
    help: `close connections silent this long after a heartbeat (default ${
      formatDuration(DEFAULTS.heartbeatTimeout)
    })`,
    parse: (v, c) => void (c.heartbeatTimeout = parseDuration(v)),
  },
  {
    name: "max-body",
    arg: "BYTES",
    help: `largest inbound frame body (default ${DEFAULTS.maxBody})`,
    parse: (v, c) => void (c.maxBody = readInt(v, 0)),
  },
  {
    name: "buckets",
    arg: "N",
    help: `connection shards (default ${DEFAULTS.buckets})`,
    parse: (v, c) => void (c.buckets = readInt(v, 1)),
  },
  {
    name: "queue",
    arg: "N",
    help:
      `frames pushed to one connection alone queued before the slow policy (default ${DEFAULTS.queueSize})`,
    parse: (v, c) => void (c.queueSize = readInt(v, 1)),
  },
  {
    name: "write-concurrency",
    arg: "N",
    help:
      `socket writes in flight at most; the rest wait in line (default ${DEFAULTS.writeConcurrency})`,
    parse: (v, c) => void (c.writeConcurrency = readInt(v, 1)),
  },
  {
    name: "write-burst",
    arg: "N",
    help:
      `write turns per event-loop visit; higher favours big rooms over the API (default ${DEFAULTS.writeBurst})`,
    parse: (v, c) => void (c.writeBurst = readInt(v, 1)),
  },
  {
    name: "slow",
    arg: "close|drop",
    help:
      `slow connection: close sends op 6 and closes, drop drops what passes its queue (default ${DEFAULTS.slow})`,
    parse: (v, c) => {
      if (v !== "close" && v !== "drop") throw new RangeError(`Must be close or drop: ${v}`);
      c.slow = v;
    },
  },
  {
    name: "write-timeout",
    arg: "D",
    help: `a socket that refuses writes this long with a full queue waiting is slow (default ${
      formatDuration(DEFAULTS.writeTimeout)
    })`,
    parse: (v, c) => void (c.writeTimeout = parseDuration(v)),
  },
  {
    name: "max-backlog",
    arg: "BYTES",
    help: `bytes all queues and room logs may hold; past it pushes get 429 (default ${
      formatSize(DEFAULTS.maxBacklog)
    })`,
    parse: (v, c) => void (c.maxBacklog = readSize(v)),
  },
  {
    name: "room-backlog",
    arg: "BYTES",
    help: `bytes one room's log may hold per bucket; past it pushes get 429 (default ${
      formatSize(DEFAULTS.roomBacklog)
    })`,
    parse: (v, c) => void (c.roomBacklog = readSize(v)),
  },
  {
    name: "history-size",
    arg: "N",
    help:
      `pushes each room, user and everyone's stream keeps for clients that reconnect; 0 = streams off (default ${DEFAULTS.historySize})`,
    parse: (v, c) => void (c.historySize = readInt(v, 0)),
  },
  {
    name: "history-ttl",
    arg: "SECONDS",
    help: `seconds each stream keeps its pushes, or a duration such as 2m (default ${
      DEFAULTS.historyTtl / 1000
    })`,
    parse: (v, c) => void (c.historyTtl = readSeconds(v)),
  },
  {
    name: "history-memory",
    arg: "BYTES",
    help:
      `bytes the streams' history may hold in memory; past it the least recently used streams lose their pushes early; 0 = no cap (default ${
        formatSize(DEFAULTS.historyMemory)
      })`,
    parse: (v, c) => void (c.historyMemory = readSize(v)),
  },
  {
    name: "workers",
    arg: "N|auto",
    help:
      `isolates serving clients on the same ports, auto = one per CPU (default ${DEFAULTS.workers}; 1 = no workers; more needs --unstable-net)`,
    parse: (v, c) => void (c.workers = readWorkers(v)),
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
    help: `how often a node reports its online counts; 3 missed = gone (default ${
      formatDuration(DEFAULTS.reportInterval)
    })`,
    parse: (v, c) => void (c.reportInterval = parseDuration(v)),
  },
  {
    name: "log",
    arg: "LEVEL",
    help: `debug, info, warn or error (default ${DEFAULTS.log})`,
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
    help: `log lines as text, or json: one JSON object per line (default ${DEFAULTS.logFormat})`,
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
    help:
      `client auth: open trusts the auth JSON, jwt verifies a JWT, webhook asks the application (default ${DEFAULTS.auth})`,
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
    parse: (v, c) => void (c.jwtPublicKey = readPath(v)),
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
    parse: (v, c) => void (c.jwtIssuer = readLine(v)),
  },
  {
    name: "jwt-audience",
    arg: "AUD",
    help: "audience (aud) tokens must name",
    parse: (v, c) => void (c.jwtAudience = readLine(v)),
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
    help: `how long one webhook auth call may take, waiting included (default ${
      formatDuration(DEFAULTS.webhookTimeout)
    })`,
    parse: (v, c) => void (c.webhookTimeout = parseDuration(v)),
  },
  {
    name: "webhook-secret",
    arg: "SECRET",
    help: "sent to the webhook as a bearer token (env COMET_WEBHOOK_SECRET)",
    parse: (v, c) => void (c.webhookSecret = readLine(v)),
  },
  {
    name: "webhook-concurrency",
    arg: "N",
    help: `webhook calls in flight at most (default ${DEFAULTS.webhookConcurrency})`,
    parse: (v, c) => void (c.webhookConcurrency = readInt(v, 1)),
  },
  {
    name: "max-connections",
    arg: "N",
    help:
      `connections at once; more are refused at accept (default ${DEFAULTS.limits.maxConnections}, lowered to fit ulimit -n; 0 = no limit)`,
    parse: (v, c) => void (c.limits.maxConnections = readLimit(v)),
  },
  {
    name: "max-connections-per-ip",
    arg: "N",
    help:
      `connections at once from one IP (default ${DEFAULTS.limits.maxConnectionsPerIp}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.maxConnectionsPerIp = readLimit(v)),
  },
  {
    name: "connect-rate",
    arg: "N",
    help:
      `new connections per second from one IP (default ${DEFAULTS.limits.connectRate}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.connectRate = readLimit(v)),
  },
  {
    name: "max-auth-attempts",
    arg: "N",
    help:
      `refused auths from one IP in a minute that bar it for a minute (default ${DEFAULTS.limits.maxAuthAttempts}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.maxAuthAttempts = readLimit(v)),
  },
  {
    name: "upstream-rate",
    arg: "N",
    help:
      `upstream messages (op 4) per second per connection (default ${DEFAULTS.limits.upstreamRate}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.upstreamRate = readLimit(v)),
  },
  {
    name: "max-rooms",
    arg: "N",
    help: `rooms with members on this node (default ${DEFAULTS.limits.maxRooms}; 0 = no limit)`,
    parse: (v, c) => void (c.limits.maxRooms = readLimit(v)),
  },
  {
    name: "trust-proxy",
    arg: "ADDR",
    help:
      "a reverse proxy's address or CIDR range (repeatable, or comma-separated): WebSocket clients through it are limited per IP by the X-Forwarded-For address it sends",
    reset: (c) => void (c.limits.trustProxy = []),
    parse: (v, c) => {
      const added = v.split(",").map((part) => part.trim());
      new TrustedProxies(added);
      c.limits.trustProxy = [...c.limits.trustProxy, ...added];
    },
  },
];
