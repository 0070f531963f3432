import assert from "node:assert/strict";
import {
  checkExposure,
  ConfigError,
  envName,
  listSettings,
  parseAddr,
  parseConfig,
  parseDuration,
  parseEnvConfig,
  usage,
} from "../src/config.ts";
import { workerConfig } from "../src/workers/supervisor.ts";

Deno.test("parseDuration reads milliseconds, seconds, minutes and hours", () => {
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("5s"), 5_000);
  assert.equal(parseDuration("8m"), 480_000);
  assert.equal(parseDuration("1.5s"), 1_500);
  assert.equal(parseDuration("1h"), 3_600_000);
});

Deno.test("parseDuration refuses a number without a unit, zero and junk", () => {
  for (const bad of ["5", "0s", "-1s", "5 parsecs", "", "s", "1e3ms"]) {
    assert.throws(() => parseDuration(bad), RangeError, bad);
  }
});

Deno.test("parseAddr reads host:port, :port, bracketed IPv6 and off", () => {
  assert.deepEqual(parseAddr("127.0.0.1:3101"), { hostname: "127.0.0.1", port: 3101 });
  assert.deepEqual(parseAddr(":3101"), { hostname: "0.0.0.0", port: 3101 });
  assert.deepEqual(parseAddr("[::1]:80"), { hostname: "::1", port: 80 });
  assert.deepEqual(parseAddr("localhost:0"), { hostname: "localhost", port: 0 });
  assert.equal(parseAddr("off"), false);
  for (const bad of ["3101", "host:", "host:99999", "::1:80", "a b:1"]) {
    assert.throws(() => parseAddr(bad), RangeError, bad);
  }
});

Deno.test("parseConfig gives the documented defaults", () => {
  const cfg = parseConfig([]);
  assert.deepEqual(cfg.tcp, { hostname: "127.0.0.1", port: 3101 });
  assert.deepEqual(cfg.api, { hostname: "127.0.0.1", port: 3111 });
  assert.equal(cfg.handshakeTimeout, 5_000);
  assert.equal(cfg.heartbeatTimeout, 480_000);
  assert.equal(cfg.maxBody, 4096);
  assert.equal(cfg.buckets, 32);
  assert.equal(cfg.writeConcurrency, 128);
  assert.equal(cfg.writeBurst, 8);
  assert.equal(cfg.slow, "close");
  assert.equal(cfg.log, "info");
  assert.equal(cfg.apiToken, undefined);
  assert.equal(cfg.apiHeaderTimeout, 10_000);
  assert.equal(cfg.apiBodyTimeout, 30_000);
  assert.equal(cfg.apiIdleTimeout, 60_000);
  assert.equal(cfg.apiMaxConnections, 1024);
  assert.equal(cfg.help, false);
});

Deno.test("parseConfig reads the push API's deadlines and connection cap", () => {
  const cfg = parseConfig([
    "--api-header-timeout=2s",
    "--api-body-timeout",
    "500ms",
    "--api-idle-timeout=1m",
    "--api-max-connections",
    "64",
  ]);
  assert.equal(cfg.apiHeaderTimeout, 2_000);
  assert.equal(cfg.apiBodyTimeout, 500);
  assert.equal(cfg.apiIdleTimeout, 60_000);
  assert.equal(cfg.apiMaxConnections, 64);
  assert.equal(parseConfig(["--api-max-connections", "0"]).apiMaxConnections, Infinity);
  assert.throws(() => parseConfig(["--api-header-timeout", "0s"]), /--api-header-timeout/);
  assert.throws(() => parseConfig(["--api-max-connections", "-1"]), /--api-max-connections/);
});

Deno.test("parseConfig reads every flag in both spellings", () => {
  const cfg = parseConfig([
    "--tcp",
    "0.0.0.0:4000",
    "--api=127.0.0.1:4001",
    "--api-token",
    "t0k",
    "--handshake-timeout=250ms",
    "--heartbeat-timeout",
    "1m",
    "--max-body",
    "8192",
    "--buckets=64",
    "--queue",
    "16",
    "--write-concurrency=8",
    "--write-burst=32",
    "--slow=drop",
    "--log",
    "debug",
    "--help",
  ]);
  assert.deepEqual(cfg.tcp, { hostname: "0.0.0.0", port: 4000 });
  assert.deepEqual(cfg.api, { hostname: "127.0.0.1", port: 4001 });
  assert.equal(cfg.apiToken, "t0k");
  assert.equal(cfg.handshakeTimeout, 250);
  assert.equal(cfg.heartbeatTimeout, 60_000);
  assert.equal(cfg.maxBody, 8192);
  assert.equal(cfg.buckets, 64);
  assert.equal(cfg.queueSize, 16);
  assert.equal(cfg.writeConcurrency, 8);
  assert.equal(cfg.writeBurst, 32);
  assert.equal(cfg.slow, "drop");
  assert.equal(cfg.log, "debug");
  assert.equal(cfg.help, true);
});

Deno.test("parseConfig names the bad flag or value in its error", () => {
  const cases: [string[], RegExp][] = [
    [["--bogus", "1"], /Unknown flag: --bogus/],
    [["--tcp"], /Missing value for --tcp/],
    [["--slow", "maybe"], /--slow/],
    [["--buckets", "0"], /--buckets/],
    [["--queue", "x"], /--queue/],
    [["--write-burst", "0"], /--write-burst/],
    [["--log", "loud"], /--log/],
    [["--heartbeat-timeout", "5"], /--heartbeat-timeout/],
    [["stray"], /Unexpected argument: stray/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseConfig(args), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, message);
      assert.ok(!err.message.includes("\n"), "one line");
      return true;
    });
  }
});

Deno.test("parseConfig reads a JSON config file and lets flags win", () => {
  const files: Record<string, string> = {
    "comet.json": JSON.stringify({ tcp: ":5000", "heartbeat-timeout": "2m", buckets: 8 }),
  };
  const cfg = parseConfig(["--config", "comet.json", "--buckets", "4"], {
    readFile: (path) => files[path] ?? "",
  });
  assert.deepEqual(cfg.tcp, { hostname: "0.0.0.0", port: 5000 });
  assert.equal(cfg.heartbeatTimeout, 120_000);
  assert.equal(cfg.buckets, 4);
});

Deno.test("parseConfig refuses unknown keys and unreadable config files", () => {
  const read = (body: string) => () => body;
  assert.throws(
    () => parseConfig(["--config", "x.json"], { readFile: read('{"nope": 1}') }),
    /Unknown config key in x.json: nope/,
  );
  assert.throws(
    () => parseConfig(["--config", "x.json"], { readFile: read("{not json") }),
    /Cannot read config file x.json/,
  );
  assert.throws(
    () => parseConfig(["--config", "x.json"], { readFile: read("[1]") }),
    /not a JSON object/,
  );
  assert.throws(
    () =>
      parseConfig(["--config", "missing.json"], {
        readFile: () => {
          throw new Deno.errors.NotFound("no such file");
        },
      }),
    /Cannot read config file missing.json/,
  );
});

Deno.test("parseConfig takes the API token from COMET_API_TOKEN below the flag", () => {
  const env = (name: string) => (name === "COMET_API_TOKEN" ? "from-env" : undefined);
  assert.equal(parseConfig([], { env }).apiToken, "from-env");
  assert.equal(parseConfig(["--api-token", "flag"], { env }).apiToken, "flag");
});

Deno.test("every flag has a variable: COMET_ and its name in capitals, dashes as underscores", () => {
  assert.equal(envName("jwt-secret"), "COMET_JWT_SECRET");
  assert.equal(envName("--max-connections-per-ip"), "COMET_MAX_CONNECTIONS_PER_IP");
  const settings = listSettings();
  const text = usage();
  for (const { flag, variable } of settings) {
    assert.ok(text.includes(flag), flag);
    assert.equal(variable, envName(flag));
  }
  assert.ok(settings.some((s) => s.variable === "COMET_WRITE_BURST"));
  assert.match(text, /COMET_MAX_BODY/);
});

Deno.test("parseConfig reads every flag's variable, below the config file and the flags", () => {
  const vars: Record<string, string> = {
    COMET_BUCKETS: "8",
    COMET_QUEUE: "16",
    COMET_SLOW: "drop",
    COMET_UPSTREAM_RATE: "0",
    COMET_TRACE_MID: "1,2",
    COMET_TCP: "127.0.0.1:4000",
  };
  const env = (name: string) => vars[name];
  const readFile = () => JSON.stringify({ buckets: 4, "trace-mid": [3] });
  const cfg = parseConfig(["--config", "c.json", "--slow", "close"], { env, readFile });
  assert.equal(cfg.buckets, 4);
  assert.equal(cfg.queueSize, 16);
  assert.equal(cfg.slow, "close");
  assert.equal(cfg.limits.upstreamRate, Infinity);
  // A list from a higher source replaces the environment's.
  assert.deepEqual(cfg.traceMids, [3]);
  assert.deepEqual(parseConfig([], { env }).traceMids, [1, 2]);
  assert.deepEqual(cfg.tcp, { hostname: "127.0.0.1", port: 4000 });
  // Without an env lookup, nothing is read.
  assert.equal(parseConfig([]).queueSize, 128);
});

Deno.test("parseConfig: a switch variable reads 1 or 0, and a bad variable is named", () => {
  const on = parseConfig(["--tcp", ":1"], {
    env: (name) => (name === "COMET_INSECURE_OPEN_AUTH" ? "1" : undefined),
  });
  assert.equal(on.insecureOpenAuth, true);
  checkExposure(on);
  const cases: [Record<string, string>, RegExp][] = [
    [{ COMET_SLOW: "sometimes" }, /^ConfigError: Invalid value for COMET_SLOW: Must be close/],
    [{ COMET_INSECURE_OPEN_AUTH: "on" }, /^ConfigError: Invalid value for COMET_INSECURE_OPEN/],
    [{ COMET_TRACE_MID: "7", COMET_LOG: "warn" }, /^ConfigError: COMET_TRACE_MID logs at info/],
  ];
  // Each source is checked, even where a higher one then sets the same flag.
  for (const [vars, message] of cases) {
    assert.throws(() => parseConfig(["--slow", "drop"], { env: (name) => vars[name] }), message);
  }
  // A flag is named as a flag, whatever the environment holds.
  assert.throws(
    () => parseConfig(["--trace-mid", "7"], { env: (name) => ({ COMET_LOG: "error" })[name] }),
    /^ConfigError: --trace-mid logs at info: it needs COMET_LOG=info or debug, not error$/,
  );
});

Deno.test("parseConfig: auth variables count under their own mode only", () => {
  const vars: Record<string, string> = {
    COMET_JWT_ISSUER: "https://app",
    COMET_WEBHOOK_URL: "https://app/auth",
    COMET_WEBHOOK_TIMEOUT: "1s",
  };
  const env = (name: string) => vars[name];
  const open = parseConfig([], { env });
  assert.deepEqual([open.jwtIssuer, open.webhookUrl], [undefined, undefined]);
  const hook = parseConfig(["--auth", "webhook"], { env });
  assert.deepEqual([hook.webhookUrl, hook.webhookTimeout, hook.jwtIssuer], [
    "https://app/auth",
    1_000,
    undefined,
  ]);
  // A flag wins over the variable of the same setting.
  const flag = parseConfig(["--auth", "webhook", "--webhook-timeout", "2s"], { env });
  assert.equal(flag.webhookTimeout, 2_000);
  // The mode itself may come from the environment.
  const jwt = parseEnvConfig((name) =>
    ({ COMET_AUTH: "jwt", COMET_JWT_PUBLIC_KEY: "k.pem", ...vars })[name]
  );
  assert.deepEqual([jwt.auth, jwt.jwtPublicKey, jwt.jwtAlg, jwt.jwtIssuer], [
    "jwt",
    "k.pem",
    "RS256",
    "https://app",
  ]);
  assert.equal(jwt.webhookUrl, undefined);
});

Deno.test("usage lists every flag", () => {
  const text = usage();
  for (
    const flag of [
      "--tcp",
      "--ws",
      "--tls-cert",
      "--tls-key",
      "--tcp-tls",
      "--wss",
      "--pkg",
      "--pkg-header",
      "--api",
      "--api-token",
      "--api-header-timeout",
      "--api-body-timeout",
      "--api-idle-timeout",
      "--api-max-connections",
      "--handshake-timeout",
      "--heartbeat-timeout",
      "--max-body",
      "--buckets",
      "--queue",
      "--slow",
      "--log",
      "--config",
      "--help",
    ]
  ) {
    assert.ok(text.includes(flag), flag);
  }
});

Deno.test("parseConfig reads the transport flags", () => {
  const cfg = parseConfig([
    "--ws=127.0.0.1:4002",
    "--tls-cert",
    "cert.pem",
    "--tls-key",
    "key.pem",
    "--tcp-tls",
    ":4443",
    "--wss",
    "127.0.0.1:4003",
    "--pkg",
    "127.0.0.1:4004",
    "--pkg-header",
    "4",
  ]);
  assert.deepEqual(cfg.ws, { hostname: "127.0.0.1", port: 4002 });
  assert.deepEqual(cfg.tcpTls, { hostname: "0.0.0.0", port: 4443 });
  assert.deepEqual(cfg.wss, { hostname: "127.0.0.1", port: 4003 });
  assert.deepEqual(cfg.pkg, { hostname: "127.0.0.1", port: 4004 });
  assert.equal(cfg.pkgHeader, 4);
  assert.equal(cfg.tlsCert, "cert.pem");
  assert.equal(cfg.tlsKey, "key.pem");
  const plain = parseConfig([]);
  assert.deepEqual(plain.ws, { hostname: "127.0.0.1", port: 3102 });
  assert.equal(plain.tcpTls, false);
  assert.equal(plain.pkg, false);
  assert.equal(plain.wss, undefined);
});

Deno.test("a certificate and key alone leave --tcp-tls off, as --help says", () => {
  const cfg = parseConfig(["--tls-cert", "c.pem", "--tls-key", "k.pem"]);
  assert.equal(cfg.tcpTls, false);
  const help = usage().split("\n").filter((l) => /--tls-(cert|key) /.test(l)).join("\n");
  assert.doesNotMatch(help, /turns on[^\n]*--tcp-tls/);
});

Deno.test("parseConfig refuses TLS listeners without a certificate and key", () => {
  assert.throws(() => parseConfig(["--tcp-tls", ":4443"]), /--tcp-tls needs --tls-cert/);
  assert.throws(() => parseConfig(["--wss", ":4443"]), /--wss needs --tls-cert/);
  assert.throws(() => parseConfig(["--tls-cert", "c.pem"]), /both --tls-cert and --tls-key/);
  assert.throws(() => parseConfig(["--pkg-header", "5"]), /--pkg-header/);
});

Deno.test("parseConfig reads --workers as auto or a count of 1 to 256, and refuses the rest", () => {
  assert.equal(parseConfig([]).workers, "auto");
  assert.equal(parseConfig(["--workers", "auto"]).workers, "auto");
  assert.equal(parseConfig(["--workers", "1"]).workers, 1);
  assert.equal(parseConfig(["--workers=256"]).workers, 256);
  assert.equal(parseEnvConfig((name) => name === "COMET_WORKERS" ? "4" : undefined).workers, 4);
  for (const bad of ["0", "-1", "1.5", "257", "two", ""]) {
    assert.throws(
      () => parseConfig(["--workers", bad]),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message ===
          `Invalid value for --workers: Must be auto or an integer of 1 to 256: ${bad}`,
      bad,
    );
  }
});

Deno.test("--trust-proxy takes addresses and ranges, repeated or comma-separated, and names a bad one", () => {
  assert.deepEqual(parseConfig([]).limits.trustProxy, []);
  const cfg = parseConfig(["--trust-proxy", "127.0.0.1, 10.0.0.0/8", "--trust-proxy", "fd00::/8"]);
  assert.deepEqual(cfg.limits.trustProxy, ["127.0.0.1", "10.0.0.0/8", "fd00::/8"]);
  const env: Record<string, string> = { COMET_TRUST_PROXY: "192.168.0.0/16" };
  assert.deepEqual(parseEnvConfig((name) => env[name]).limits.trustProxy, ["192.168.0.0/16"]);
  assert.throws(
    () => parseConfig(["--trust-proxy", "10.0.0.0/33"]),
    /--trust-proxy.*Trusted proxy must be an IP address or a CIDR range: 10\.0\.0\.0\/33/,
  );
  // The workers each get the list.
  assert.deepEqual(workerConfig(cfg, 2).limits.trustProxy, cfg.limits.trustProxy);
});
