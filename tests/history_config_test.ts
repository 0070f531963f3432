import assert from "node:assert/strict";
import { ConfigError, parseConfig, parseEnvConfig } from "../src/config.ts";
import { DEFAULTS } from "../src/defaults.ts";
import { silentLogger } from "../src/log.ts";
import { serve } from "../src/serve.ts";

Deno.test("history settings default to 1000 pushes for 120 seconds", () => {
  const cfg = parseConfig([]);
  assert.deepEqual([cfg.historySize, cfg.historyTtl], [1000, 120_000]);
  assert.deepEqual([DEFAULTS.historySize, DEFAULTS.historyTtl], [1000, 120_000]);
});

Deno.test("history flags and variables read sizes, seconds and durations", () => {
  const cfg = parseConfig(["--history-size", "0", "--history-ttl", "90"]);
  assert.deepEqual([cfg.historySize, cfg.historyTtl], [0, 90_000]);
  assert.equal(parseConfig(["--history-ttl", "2m"]).historyTtl, 120_000);
  const env: Record<string, string> = { COMET_HISTORY_SIZE: "50", COMET_HISTORY_TTL: "0.5" };
  const fromEnv = parseEnvConfig((name) => env[name]);
  assert.deepEqual([fromEnv.historySize, fromEnv.historyTtl], [50, 500]);
});

Deno.test("bad history settings are refused naming the flag", () => {
  assert.throws(() => parseConfig(["--history-size", "-1"]), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /--history-size/);
    return true;
  });
  for (const ttl of ["0", "soon", "-3"]) {
    assert.throws(() => parseConfig(["--history-ttl", ttl]), /--history-ttl/);
    // Both forms the flag reads are named, not only a duration's.
    assert.throws(
      () => parseConfig(["--history-ttl", ttl]),
      /positive number of seconds, or a duration with a unit/,
    );
  }
});

Deno.test("serve refuses a history size or ttl out of range", () => {
  const base = { tcp: false, ws: false, api: false, logger: silentLogger } as const;
  assert.throws(() => serve({ ...base, historySize: 1.5 }), RangeError);
  assert.throws(() => serve({ ...base, historyTtl: 0 }), RangeError);
});

Deno.test("serve turns streams off with history size 0", async () => {
  await using server = serve({
    tcp: false,
    ws: false,
    api: false,
    logger: silentLogger,
    historySize: 0,
  });
  assert.equal(server.comet.history, undefined);
});
