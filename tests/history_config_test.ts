import assert from "node:assert/strict";
import { ConfigError, parseConfig, parseEnvConfig } from "../src/config.ts";
import { DEFAULTS } from "../src/defaults.ts";
import { silentLogger } from "../src/log.ts";
import { collectMetrics, formatMetrics } from "../src/api/metrics.ts";
import { serve } from "../src/serve.ts";
import { workerConfig } from "../src/workers/supervisor.ts";

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

Deno.test("serve refuses a history size, ttl or memory cap out of range", () => {
  const base = { tcp: false, ws: false, api: false, logger: silentLogger } as const;
  assert.throws(() => serve({ ...base, historySize: 1.5 }), RangeError);
  assert.throws(() => serve({ ...base, historyTtl: 0 }), RangeError);
  assert.throws(() => serve({ ...base, historyMemory: 0 }), /History memory must be a positive/);
  assert.throws(() => serve({ ...base, historyMemory: NaN }), RangeError);
});

Deno.test("the history memory cap defaults to 256 MiB, reads sizes, and 0 lifts it", () => {
  assert.equal(parseConfig([]).historyMemory, 256 * 1024 * 1024);
  assert.equal(parseConfig(["--history-memory", "64MiB"]).historyMemory, 64 * 1024 * 1024);
  assert.equal(parseConfig(["--history-memory", "0"]).historyMemory, Infinity);
  const env: Record<string, string> = { COMET_HISTORY_MEMORY: "1g" };
  assert.equal(parseEnvConfig((name) => env[name]).historyMemory, 1 << 30);
  assert.throws(() => parseConfig(["--history-memory", "lots"]), /--history-memory/);
  // Each worker holds its share, so the process holds what the flag says.
  const share = workerConfig(parseConfig(["--history-memory", "100MiB"]), 4);
  assert.equal(share.historyMemory, 25 * 1024 * 1024);
  assert.equal(workerConfig(parseConfig(["--history-memory", "0"]), 4).historyMemory, Infinity);
});

Deno.test("a server's history in memory keeps under its cap and says so in metrics", async () => {
  await using server = serve({
    tcp: false,
    ws: false,
    api: false,
    logger: silentLogger,
    historyMemory: 20_000,
  });
  const comet = server.comet;
  const kb = new Uint8Array(1000);
  for (let mid = 1; mid <= 100; mid++) comet.pushMids([mid], 1000, kb);
  const figures = comet.history!.figures!();
  assert.ok(figures.held! <= 20_000, `held ${figures.held}`);
  assert.ok(figures.evictedPushes! > 0, JSON.stringify(figures));
  const text = formatMetrics(collectMetrics(comet, { cluster: server.cluster }));
  assert.match(text, /^comet_history_held_bytes \d+$/m);
  assert.match(
    text,
    new RegExp(`^comet_history_evicted_total\\{what="pushes"\\} ${figures.evictedPushes}$`, "m"),
  );
  assert.match(text, /^comet_history_evicted_total\{what="streams"\} \d+$/m);
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

Deno.test("serve with historyMemory Infinity keeps a history with no cap", async () => {
  await using server = serve({
    tcp: false,
    ws: false,
    api: false,
    logger: silentLogger,
    historyMemory: Infinity,
  });
  const kb = new Uint8Array(1000);
  for (let mid = 1; mid <= 100; mid++) server.comet.pushMids([mid], 1000, kb);
  const figures = server.comet.history!.figures!();
  assert.deepEqual([figures.entries, figures.evictedPushes], [100, 0]);
});
