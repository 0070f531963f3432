// The one table of defaults against what states or applies a default: the
// hub built without options, parseConfig, `comet --help` and the flag table
// of docs/configuration.md. A stated default is read back with the flag's own parser, so
// `60s` and `1m` agree and a typo does not.
import assert from "node:assert/strict";
import { type CliConfig, listSettings, parseConfig, usage } from "../src/config.ts";
import { DEFAULTS } from "../src/defaults.ts";
import { Comet } from "../src/server/comet.ts";

/** Flags that have no default value: unset means off, or none. */
const NO_DEFAULT = new Set([
  "tls-cert",
  "tls-key",
  "api-token",
  "insecure-open-auth",
  "jwt-secret",
  "jwt-public-key",
  "jwt-issuer",
  "jwt-audience",
  "webhook-url",
  "webhook-secret",
  "redis",
  "trace-mid",
  "trust-proxy",
]);

/** Flags whose default is a rule, not a value; the help and the docs describe it in words. */
const DESCRIBED = new Set(["node-id", "advertise", "session-ttl", "jwt-alg"]);

/**
 * Flags whose default applies only with others, and so is not in
 * `parseConfig([])`: the flags that make it apply, and the field and
 * {@linkcode DEFAULTS} value it must equal.
 */
const IN_CONTEXT: Record<string, { args: string[]; field: keyof CliConfig; value: unknown }> = {
  wss: { args: ["--tls-cert", "c.pem", "--tls-key", "k.pem"], field: "wss", value: DEFAULTS.wss },
  "webhook-timeout": {
    args: ["--auth", "webhook", "--webhook-url", "http://127.0.0.1/auth"],
    field: "webhookTimeout",
    value: DEFAULTS.webhookTimeout,
  },
  "webhook-concurrency": {
    args: ["--auth", "webhook", "--webhook-url", "http://127.0.0.1/auth"],
    field: "webhookConcurrency",
    value: DEFAULTS.webhookConcurrency,
  },
  "report-interval": {
    args: ["--redis", "redis://127.0.0.1:6379"],
    field: "reportInterval",
    value: DEFAULTS.reportInterval,
  },
};

/** Fails unless `stated`, read as `--flag stated`, is the default of defaults.ts. */
function assertDefault(where: string, flag: string, stated: string | undefined): void {
  if (NO_DEFAULT.has(flag)) {
    assert.equal(stated, undefined, `${where}: --${flag} states a default, ${stated}`);
    return;
  }
  assert.ok(stated !== undefined, `${where}: --${flag} states no default`);
  if (DESCRIBED.has(flag)) return;
  const context = IN_CONTEXT[flag];
  let got: CliConfig;
  try {
    got = parseConfig([...context?.args ?? [], `--${flag}=${stated}`]);
  } catch (err) {
    throw new Error(`${where}: --${flag}'s default ${stated} is not a value of it`, {
      cause: err,
    });
  }
  const message = `${where}: --${flag} states default ${stated}, defaults.ts says otherwise`;
  if (context) assert.deepEqual(got[context.field], context.value, message);
  else assert.deepEqual(got, parseConfig([]), message);
}

/** The default `--help` states for each flag: the first word after `(default `. */
function helpDefaults(): Map<string, string | undefined> {
  const stated = new Map<string, string | undefined>();
  for (const { flag, help } of listSettings()) {
    stated.set(flag.slice(2), /\(default ([^\s;,)]+)/.exec(help)?.[1]);
  }
  return stated;
}

/**
 * The default column of docs/configuration.md's flag table, by flag: the first
 * backticked value in the cell, else its text; none for an empty cell or
 * one that names a variable (`env COMET_API_TOKEN`).
 */
async function documentedDefaults(): Promise<Map<string, string | undefined>> {
  const doc = await Deno.readTextFile(new URL("../docs/configuration.md", import.meta.url));
  const section = /\n## Flags\n([^]*?)\n##? /.exec(doc)?.[1];
  assert.ok(section, "docs/configuration.md has a Flags section");
  const stated = new Map<string, string | undefined>();
  for (const line of section.split("\n")) {
    if (!line.startsWith("| `--")) continue;
    const [flagCell, defaultCell] = line.split(/(?<!\\)\|/).slice(1, 3).map((c) => c.trim());
    const flag = /^`--([a-z-]+)/.exec(flagCell!)![1]!;
    const cell = defaultCell!;
    const value = /`([^`]+)`/.exec(cell)?.[1] ?? cell;
    stated.set(flag, cell === "" || cell.startsWith("env ") ? undefined : value);
  }
  return stated;
}

Deno.test("a hub made without options uses the table's timings and sizes", async () => {
  await using comet = new Comet();
  assert.equal(comet.heartbeatTimeout, DEFAULTS.heartbeatTimeout);
  assert.equal(comet.maxBody, DEFAULTS.maxBody);
  assert.equal(comet.buckets.length, DEFAULTS.buckets);
});

Deno.test("parseConfig with nothing given is the table", () => {
  const cfg = parseConfig([]);
  let compared = 0;
  for (const [key, value] of Object.entries(DEFAULTS)) {
    if (!(key in cfg)) continue;
    assert.deepEqual(cfg[key as keyof CliConfig], value, key);
    compared++;
  }
  assert.ok(compared >= 20, `only ${compared} settings compared`);
  assert.ok(!Object.isFrozen(cfg.limits), "the config's limits are a copy");
});

Deno.test("--help states each flag's default as the table has it", () => {
  const stated = helpDefaults();
  assert.ok(stated.size >= 50, `only ${stated.size} flags`);
  for (const [flag, value] of stated) assertDefault("--help", flag, value);
  assert.match(usage(), /--heartbeat-timeout D +close connections .*\(default 8m\)/);
});

Deno.test("docs/configuration.md's flag table lists every flag with the table's default", async () => {
  const stated = await documentedDefaults();
  const flags = listSettings().map((s) => s.flag.slice(2));
  assert.deepEqual(
    [...stated.keys()].filter((f) => !["config", "help", "version"].includes(f)).sort(),
    [...flags].sort(),
  );
  for (const flag of flags) assertDefault("docs/configuration.md", flag, stated.get(flag));
});

Deno.test("a wrong stated default is caught", () => {
  assert.throws(() => assertDefault("test", "heartbeat-timeout", "4m"), /heartbeat-timeout/);
  assert.throws(() => assertDefault("test", "max-backlog", "128MiB"), /max-backlog/);
  assert.throws(() => assertDefault("test", "wss", "127.0.0.1:3104"), /wss/);
  assert.throws(() => assertDefault("test", "tcp", "soon"), /not a value/);
  assert.throws(() => assertDefault("test", "buckets", undefined), /states no default/);
  assert.throws(() => assertDefault("test", "redis", "redis://x:1"), /states a default/);
});
