// The command's auth and exposure settings: every refusal is one line and exit
// status 2; --auth jwt and --auth webhook serve real clients; serve() refuses a
// push API beyond loopback without a token.
import assert from "node:assert/strict";
import { checkExposure, ConfigError, parseConfig, usage } from "../src/config.ts";
import { Op } from "../src/protocol/op.ts";
import { serve } from "../src/serve.ts";
import { silentLogger } from "../src/log.ts";
import { TestClient, text } from "./_helpers.ts";
import { ecPair, hmacKey, nowSeconds, pem, rsaPair, SECRET, sign } from "./_jwt.ts";
import { cli, LineReader, stopChild } from "./_process.ts";

/** Runs the command and expects exit 2 with one line on stderr that matches. */
async function refused(args: string[], message: RegExp, env: Record<string, string> = {}) {
  const out = await cli(args, env).output();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(out.code, 2, `${args.join(" ")}: ${stderr}`);
  assert.equal(stderr.split("\n").length, 1, stderr);
  assert.ok(stderr.startsWith("comet: "), stderr);
  assert.match(stderr, message);
}

/** A running command: its ports, its log, and a clean stop. */
class Running implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly stderr: LineReader;
  readonly stdout: LineReader;
  ports: Record<string, number> = {};

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = cli(args, env).spawn();
    this.stderr = new LineReader(this.child.stderr);
    this.stdout = new LineReader(this.child.stdout);
  }

  async listening(): Promise<this> {
    const line = (await this.stderr.line(/Comet listening .*/))[0];
    for (const m of line.matchAll(/ (\w+)=\S+:(\d+)/g)) this.ports[m[1]!] = Number(m[2]);
    return this;
  }

  async stop(): Promise<number | null> {
    this.child.kill("SIGTERM");
    return (await this.child.status).code;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await stopChild(this.child, this.stderr, this.stdout);
  }
}

const LOCAL = ["--tcp", "127.0.0.1:0", "--ws", "off", "--api", "127.0.0.1:0"];

Deno.test("auth cli: each bad combination is refused in one line with status 2", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const garbage = `${dir}/garbage.pem`;
    await Deno.writeTextFile(garbage, "not a key at all\n");
    const rsa = `${dir}/rsa.pem`;
    await Deno.writeTextFile(rsa, (await rsaPair()).publicPem);
    const priv = `${dir}/private.pem`;
    const pair = await ecPair();
    await Deno.writeTextFile(
      priv,
      pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", pair.privateKey)),
    );
    const jwt = ["--auth", "jwt"];
    const cases: [string[], RegExp][] = [
      [jwt, /--auth jwt needs a key: --jwt-secret \(or COMET_JWT_SECRET\) or --jwt-public-key/],
      [[...jwt, "--jwt-secret", SECRET, "--jwt-public-key", rsa], /exclude each other/],
      [["--jwt-issuer", "https://app"], /--jwt-issuer needs --auth jwt/],
      [["--jwt-secret", SECRET], /--jwt-secret needs --auth jwt/],
      [["--auth", "webhook", "--jwt-audience", "comet"], /--jwt-audience needs --auth jwt/],
      [["--webhook-url", "http://127.0.0.1:1/auth"], /--webhook-url needs --auth webhook/],
      [
        ["--auth", "jwt", "--jwt-secret", SECRET, "--webhook-timeout", "1s"],
        /needs --auth webhook/,
      ],
      [["--auth", "webhook"], /--auth webhook needs --webhook-url/],
      [["--auth", "webhook", "--webhook-url", "ftp://x/"], /--webhook-url.*http or https/],
      [["--auth", "kerberos"], /--auth.*open, jwt or webhook/],
      [[...jwt, "--jwt-secret", "too short"], /--jwt-secret: Must be at least 32 bytes: 9/],
      [[...jwt, "--jwt-public-key", `${dir}/missing.pem`], /Cannot read --jwt-public-key/],
      [[...jwt, "--jwt-public-key", garbage], /Unusable JWT key in .*garbage\.pem: .*PEM/],
      [[...jwt, "--jwt-public-key", priv], /Unusable JWT key.*private key/],
      [[...jwt, "--jwt-alg", "ES256", "--jwt-public-key", rsa], /Unusable JWT key.*P-256/],
      [[...jwt, "--jwt-alg", "RS256", "--jwt-secret", SECRET], /RS256 needs --jwt-public-key/],
      [[...jwt, "--jwt-secret", SECRET, "--insecure-open-auth"], /is for --auth open/],
      [
        ["--tcp", ":0"],
        /^comet: Open auth lets any client claim any user; refusing to listen on 0\.0\.0\.0:0: use --auth jwt or --auth webhook, or pass --insecure-open-auth$/,
      ],
      [["--tcp", "127.0.0.1:0", "--ws", "[::]:0"], /refusing to listen on \[::\]:0/],
      [["--tcp", "off", "--ws", "off", "--pkg", "10.1.2.3:0"], /Open auth.*10\.1\.2\.3:0/],
      [
        ["--api", "0.0.0.0:0"],
        /^comet: A push API without a token lets anyone push to every client; refusing to listen on 0\.0\.0\.0:0: set --api-token \(or COMET_API_TOKEN\)$/,
      ],
    ];
    await Promise.all(cases.map(([args, message]) => refused(args, message)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auth cli: --insecure-open-auth and an API token allow other addresses", async () => {
  await using server = await new Running([
    "--tcp",
    "0.0.0.0:0",
    "--ws",
    "off",
    "--api",
    "0.0.0.0:0",
    "--api-token",
    "t0k",
    "--insecure-open-auth",
  ]).listening();
  await using _c = await TestClient.auth(server.ports.tcp!, { mid: 1 });
  const res = await fetch(`http://127.0.0.1:${server.ports.api}/goim/online/total`, {
    headers: { authorization: "Bearer t0k" },
  });
  assert.deepEqual((await res.json()).data, { ip_count: 1, conn_count: 1 });
  assert.equal(await server.stop(), 0);
});

Deno.test("auth cli: --auth jwt admits a good HS256 token and refuses an expired one", async () => {
  // The secret from the environment, as it should be given (not on the command line).
  await using server = await new Running(
    [...LOCAL, "--auth", "jwt", "--jwt-issuer", "https://app.example"],
    { COMET_JWT_SECRET: SECRET },
  ).listening();
  const key = await hmacKey();
  const iss = "https://app.example";
  const good = await sign("HS256", key, {
    sub: "7",
    iss,
    exp: nowSeconds() + 60,
    room: "live://1",
  });
  await using c = await TestClient.auth(server.ports.tcp!, { token: good, accepts: [1000] });
  const res = await fetch(
    `http://127.0.0.1:${server.ports.api}/goim/push/mids?operation=1000&mids=7`,
    { method: "POST", body: "for user 7" },
  );
  assert.equal((await res.json()).code, 0);
  assert.equal(text((await c.nextOp(1000)).body), "for user 7");

  // Expired beyond the 30 s clock skew.
  const expired = await sign("HS256", key, { sub: "7", iss, exp: nowSeconds() - 120 });
  {
    await using bad = await TestClient.connect(server.ports.tcp!);
    bad.sendFrame(Op.Auth, JSON.stringify({ token: expired }));
    const f = await bad.next();
    assert.equal(f.op, Op.DisconnectReply);
    assert.match(text(f.body), /^auth failed: Token has expired: at \d{4}-/);
    assert.ok(await bad.closedByServer());
  }
  // Signed with another secret.
  const forged = await sign("HS256", await hmacKey("another secret, also 32 bytes long!"), {
    sub: "7",
    iss,
    exp: nowSeconds() + 60,
  });
  {
    await using bad = await TestClient.connect(server.ports.tcp!);
    bad.sendFrame(Op.Auth, forged);
    assert.equal(text((await bad.next()).body), "auth failed: Token signature is invalid");
  }
  assert.equal(await server.stop(), 0);
});

Deno.test("auth cli: --auth jwt with an ES256 public key file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pair = await ecPair();
    await Deno.writeTextFile(`${dir}/ec.pem`, pair.publicPem);
    await using server = await new Running([
      ...LOCAL,
      "--auth",
      "jwt",
      "--jwt-alg",
      "ES256",
      "--jwt-public-key",
      `${dir}/ec.pem`,
      "--jwt-audience",
      "comet",
    ]).listening();
    const token = await sign("ES256", pair.privateKey, {
      sub: 9,
      aud: "comet",
      exp: nowSeconds() + 60,
    });
    await using c = await TestClient.auth(server.ports.tcp!, { token });
    c.sendFrame(Op.Heartbeat);
    await c.nextOp(Op.HeartbeatReply);
    assert.equal(await server.stop(), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("auth cli: --auth webhook asks the application", async () => {
  const seen: { authorization: string | null; body: string }[] = [];
  await using app = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const call = await req.json();
    seen.push({ authorization: req.headers.get("authorization"), body: call.body });
    return call.body === "let-me-in"
      ? Response.json({ mid: 5, key: "from-app", room: "live://app", accepts: [1000] })
      : Response.json({ error: "unknown device" });
  });
  await using server = await new Running(
    [
      ...LOCAL,
      "--auth",
      "webhook",
      "--webhook-url",
      `http://127.0.0.1:${app.addr.port}/auth`,
      "--webhook-timeout",
      "2s",
      "--webhook-concurrency",
      "4",
    ],
    { COMET_WEBHOOK_SECRET: "hook-secret" },
  ).listening();
  const port = server.ports.tcp!;
  {
    await using c = await TestClient.connect(port);
    const seq = c.sendFrame(Op.Auth, "let-me-in");
    const f = await c.next();
    assert.equal(f.op, Op.AuthReply);
    assert.equal(f.seq, seq);
    const res = await fetch(
      `http://127.0.0.1:${server.ports.api}/goim/push/room?operation=1000&type=live&room=app`,
      { method: "POST", body: "to the app room" },
    );
    assert.equal((await res.json()).code, 0);
    assert.equal(text((await c.nextOp(1000)).body), "to the app room");
  }
  {
    await using c = await TestClient.connect(port);
    c.sendFrame(Op.Auth, "who knows");
    const f = await c.next();
    assert.equal(f.op, Op.DisconnectReply);
    assert.equal(text(f.body), "auth failed: unknown device");
  }
  assert.deepEqual(seen, [
    { authorization: "Bearer hook-secret", body: "let-me-in" },
    { authorization: "Bearer hook-secret", body: "who knows" },
  ]);
  assert.equal(await server.stop(), 0);
});

Deno.test("parseConfig: auth, limits, logging and the value-less flag", () => {
  const cfg = parseConfig([]);
  assert.equal(cfg.auth, "open");
  assert.equal(cfg.insecureOpenAuth, false);
  assert.equal(cfg.logFormat, "text");
  assert.deepEqual(cfg.traceMids, []);
  assert.equal(cfg.limits.maxConnections, 100_000);
  assert.equal(cfg.limits.upstreamRate, 100);

  const limits = parseConfig([
    "--max-connections",
    "10",
    "--max-connections-per-ip=0",
    "--connect-rate",
    "5",
    "--max-auth-attempts",
    "3",
    "--upstream-rate",
    "0",
    "--max-rooms",
    "7",
  ]).limits;
  assert.equal(limits.maxConnections, 10);
  assert.equal(limits.maxConnectionsPerIp, Infinity, "0 = no limit");
  assert.equal(limits.connectRate, 5);
  assert.equal(limits.maxAuthAttempts, 3);
  assert.equal(limits.upstreamRate, Infinity);
  assert.equal(limits.maxRooms, 7);
  assert.throws(() => parseConfig(["--max-rooms", "-1"]), /--max-rooms/);

  assert.equal(parseConfig(["--insecure-open-auth"]).insecureOpenAuth, true);
  assert.equal(parseConfig(["--insecure-open-auth=false"]).insecureOpenAuth, false);
  assert.throws(() => parseConfig(["--insecure-open-auth=yes"]), /--insecure-open-auth/);
  // A value-less flag does not swallow the next argument.
  assert.equal(parseConfig(["--insecure-open-auth", "--log", "warn"]).log, "warn");

  assert.deepEqual(
    parseConfig(["--trace-mid", "1,2", "--trace-mid=3", "--trace-mid", "2"]).traceMids,
    [
      1,
      2,
      3,
    ],
  );
  assert.throws(() => parseConfig(["--trace-mid", "0"]), /--trace-mid/);
  assert.throws(() => parseConfig(["--trace-mid", "x"]), /--trace-mid/);
  assert.throws(() => parseConfig(["--log-format", "xml"]), /--log-format/);
  assert.throws(() => parseConfig(["--trace-mid", "1", "--log", "warn"]), /needs --log info/);

  const help = usage();
  for (
    const flag of [
      "--auth open|jwt|webhook",
      "--insecure-open-auth  ",
      "--jwt-secret",
      "--jwt-public-key FILE",
      "--jwt-alg",
      "--jwt-issuer",
      "--jwt-audience",
      "--webhook-url URL",
      "--webhook-timeout D",
      "--webhook-secret",
      "--webhook-concurrency N",
      "--max-connections N",
      "--max-connections-per-ip N",
      "--connect-rate N",
      "--max-auth-attempts N",
      "--upstream-rate N",
      "--max-rooms N",
      "--log-format text|json",
      "--trace-mid ID",
    ]
  ) {
    assert.ok(help.includes(flag), flag);
  }
});

Deno.test("parseConfig: the config file takes booleans and lists; flags replace lists", () => {
  const file = JSON.stringify({
    "insecure-open-auth": true,
    tcp: ":4000",
    "trace-mid": [1, "2,3"],
    "log-format": "json",
  });
  const readFile = () => file;
  const cfg = parseConfig(["--config", "c.json"], { readFile });
  assert.equal(cfg.insecureOpenAuth, true);
  assert.deepEqual(cfg.traceMids, [1, 2, 3]);
  assert.equal(cfg.logFormat, "json");
  checkExposure(cfg);
  assert.deepEqual(
    parseConfig(["--config", "c.json", "--trace-mid", "9"], { readFile }).traceMids,
    [9],
  );
  assert.throws(
    () => parseConfig(["--config", "c.json"], { readFile: () => '{"max-rooms": true}' }),
    /Config key max-rooms must be a string or number/,
  );
  assert.throws(
    () => parseConfig(["--config", "c.json"], { readFile: () => '{"nope": true}' }),
    /Unknown config key in c.json: nope/,
  );
});

Deno.test("parseConfig: secrets from the environment only with their auth mode", () => {
  const env = (name: string) =>
    ({ COMET_JWT_SECRET: SECRET, COMET_WEBHOOK_SECRET: "hook" } as Record<string, string>)[name];
  // Set but unused: not an error.
  const open = parseConfig([], { env });
  assert.equal(open.jwtSecret, undefined);
  assert.equal(open.webhookSecret, undefined);
  const jwt = parseConfig(["--auth", "jwt"], { env });
  assert.equal(jwt.jwtSecret, SECRET);
  assert.equal(jwt.jwtAlg, "HS256");
  // An explicit public key wins over the variable.
  const rs = parseConfig(["--auth", "jwt", "--jwt-public-key", "k.pem"], { env });
  assert.equal(rs.jwtSecret, undefined);
  assert.equal(rs.jwtAlg, "RS256");
  const hook = parseConfig(["--auth", "webhook", "--webhook-url", "https://app/auth"], { env });
  assert.equal(hook.webhookSecret, "hook");
  assert.equal(
    parseConfig(["--auth", "webhook", "--webhook-url", "https://a/", "--webhook-secret", "f"], {
      env,
    }).webhookSecret,
    "f",
  );
});

Deno.test("checkExposure: loopback is always fine; other addresses need auth or a token", () => {
  const ok = (args: string[]) => checkExposure(parseConfig(args));
  const bad = (args: string[], message: RegExp) =>
    assert.throws(() => ok(args), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, message);
      return true;
    });
  ok([]);
  ok(["--tcp", "localhost:1", "--ws", "[::1]:2", "--api", "127.0.0.2:3"]);
  ok(["--tcp", ":1", "--auth", "jwt", "--jwt-secret", SECRET]);
  ok(["--tcp", ":1", "--auth", "webhook", "--webhook-url", "http://app/"]);
  ok(["--api", ":1", "--api-token", "t"]);
  bad(["--tcp", "192.168.1.5:1"], /refusing to listen on 192\.168\.1\.5:1/);
  bad(["--ws", "[::ffff:127.0.0.1]:1"], /refusing to listen on \[::ffff:127\.0\.0\.1\]:1/);
  bad(["--tls-cert", "c", "--tls-key", "k", "--wss", ":1"], /0\.0\.0\.0:1/);
  bad(["--tls-cert", "c", "--tls-key", "k", "--tcp-tls", ":2"], /0\.0\.0\.0:2/);
  // The API rule holds whatever the client auth.
  bad(["--auth", "jwt", "--jwt-secret", SECRET, "--api", ":1"], /push API without a token/);
});

Deno.test("serve() refuses a push API beyond loopback without a token", async () => {
  const base = { tcp: false, ws: false, logger: silentLogger } as const;
  assert.throws(
    () => serve({ ...base, api: { hostname: "0.0.0.0", port: 0 } }),
    (err: unknown) => {
      assert.ok(err instanceof TypeError);
      assert.equal(
        err.message,
        "Push API without a token lets anyone push to every client; refusing to listen on 0.0.0.0:0: pass apiToken",
      );
      return true;
    },
  );
  assert.throws(
    () => serve({ ...base, api: { hostname: "::", port: 0 }, apiToken: "" }),
    TypeError,
  );
  await using server = serve({ ...base, api: { hostname: "0.0.0.0", port: 0 }, apiToken: "t" });
  assert.equal(server.addrs.api!.hostname, "0.0.0.0");
});
