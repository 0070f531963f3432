// A Redis cluster's options: checked before anything connects, with defaults filled in.
import assert from "node:assert/strict";
import { checkClusterOptions } from "../src/cluster/redis_cluster_options.ts";
import { DEFAULT_REPORT_INTERVAL } from "../src/cluster/report_exchange.ts";
import { DEFAULTS } from "../src/defaults.ts";

Deno.test("no options: a random node id, the comet: prefix and the default report interval", () => {
  const a = checkClusterOptions({});
  const b = checkClusterOptions({});
  assert.notEqual(a.nodeId, b.nodeId);
  assert.equal(a.prefix, "comet:");
  assert.equal(a.reportInterval, DEFAULT_REPORT_INTERVAL);
  assert.equal(DEFAULTS.reportInterval, DEFAULT_REPORT_INTERVAL);
  assert.equal(a.sessionTtl, undefined);
  assert.deepEqual(a.redis, {});
});

Deno.test("given options are kept; only the connection's go to Redis", () => {
  const reconnect = { initialDelay: 20 };
  const checked = checkClusterOptions({
    nodeId: "comet-1.a_b",
    prefix: "x:",
    reportInterval: 100,
    sessionTtl: 2_000,
    reconnect,
    connectTimeout: 500,
    caCerts: ["PEM"],
  });
  assert.equal(checked.nodeId, "comet-1.a_b");
  assert.equal(checked.prefix, "x:");
  assert.equal(checked.reportInterval, 100);
  assert.equal(checked.sessionTtl, 2_000);
  assert.deepEqual(checked.redis, { reconnect, connectTimeout: 500, caCerts: ["PEM"] });
});

Deno.test("bad node ids and prefixes are TypeErrors, bad durations RangeErrors", () => {
  for (const nodeId of ["", "a b", "x".repeat(65), "n/1"]) {
    assert.throws(() => checkClusterOptions({ nodeId }), TypeError, nodeId);
  }
  assert.throws(() => checkClusterOptions({ prefix: 1 as unknown as string }), TypeError);
  for (const bad of [0, -1, NaN, Infinity]) {
    assert.throws(() => checkClusterOptions({ reportInterval: bad }), RangeError);
    assert.throws(() => checkClusterOptions({ sessionTtl: bad }), RangeError);
  }
});
