import assert from "node:assert/strict";
import {
  DESCRIPTOR_RESERVE,
  fitConnections,
  parseDescriptorLimit,
  readDescriptorLimit,
} from "../src/transport/fd_limit.ts";
import { spawnCliUnderUlimit, stopChild } from "./_process.ts";

Deno.test("the descriptor limit is read from a limits file, unlimited as Infinity", () => {
  const text = [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max processes             63704                63704                processes ",
    "Max open files            1024                 524288               files     ",
  ].join("\n");
  assert.deepEqual(parseDescriptorLimit(text), { soft: 1024, hard: 524288 });
  assert.deepEqual(
    parseDescriptorLimit("Max open files  unlimited  unlimited  files"),
    { soft: Infinity, hard: Infinity },
  );
  assert.equal(parseDescriptorLimit("no such line"), undefined);
});

Deno.test("reading this process's descriptor limit does not throw", () => {
  const limit = readDescriptorLimit();
  // The test runner may run sh (--allow-run): then the limit is known.
  if (limit !== undefined) assert.ok(limit.soft > 0 && limit.hard >= limit.soft);
});

Deno.test("connection limits that fit are kept; defaults that do not are lowered to fit", () => {
  assert.deepEqual(fitConnections(1_000_000, { connections: 100_000, api: 1024 }), {
    connections: 100_000,
    api: 1024,
  });
  const fit = fitConnections(1024, { connections: 100_000, api: 1024 });
  assert.deepEqual(fit, { connections: 864, api: 96 });
  assert.ok(fit.connections + fit.api + DESCRIPTOR_RESERVE <= 1024);
  assert.deepEqual(fitConnections(1024, { connections: 100_000, api: 0 }), {
    connections: 960,
    api: 0,
  });
  // An explicit limit is not lowered; the other one still is.
  assert.deepEqual(
    fitConnections(1024, { connections: 5_000, api: 1024 }, { lower: { connections: false } }),
    { connections: 5_000, api: 96 },
  );
  // Tiny limits still leave the API a few connections.
  assert.deepEqual(fitConnections(100, { connections: Infinity, api: 1024 }, { reserve: 64 }), {
    connections: 28,
    api: 8,
  });
});

Deno.test("under a low ulimit the comet command lowers its default connection limits and says so", async () => {
  // --allow-all is what it takes to read /proc/self/limits in Deno 2.
  const { child, stderr, stdout } = spawnCliUnderUlimit(128, ["--allow-all"]);
  try {
    const m = await stderr.line(
      /WARN Descriptor limit below the default connection limits: lowered them to fit.* limit=128 .*maxConnections=(\d+) apiMaxConnections=(\d+)/,
    );
    assert.deepEqual([Number(m[1]), Number(m[2])], [56, 8]);
    await stderr.line(/Comet listening/);
  } finally {
    await stopChild(child, stderr, stdout);
  }
});
