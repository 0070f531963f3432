import assert from "node:assert/strict";
import {
  formatAddr,
  formatDuration,
  formatSize,
  parseAddr,
  parseDuration,
  readLimit,
  readSize,
} from "../src/config_values.ts";

Deno.test("a duration is written in the largest whole unit and reads back", () => {
  for (
    const [ms, text] of [[480_000, "8m"], [10_000, "10s"], [60_000, "1m"], [3_600_000, "1h"], [
      250,
      "250ms",
    ], [1_500, "1500ms"]] as const
  ) {
    assert.equal(formatDuration(ms), text);
    assert.equal(parseDuration(text), ms);
  }
});

Deno.test("a size is written in the largest whole binary unit and reads back", () => {
  for (
    const [bytes, text] of [[256 << 20, "256MiB"], [4096, "4KiB"], [1 << 30, "1GiB"], [
      1000,
      "1000",
    ]] as const
  ) {
    assert.equal(formatSize(bytes), text);
    assert.equal(readSize(text), bytes);
  }
  assert.equal(readSize("0"), Infinity, "0 = no cap");
});

Deno.test("an address is written as the flags take it", () => {
  assert.equal(formatAddr({ hostname: "127.0.0.1", port: 3101 }), "127.0.0.1:3101");
  assert.equal(formatAddr({ hostname: "::1", port: 80 }), "[::1]:80");
  assert.deepEqual(parseAddr(formatAddr({ hostname: "::1", port: 80 })), {
    hostname: "::1",
    port: 80,
  });
});

Deno.test("a limit of 0 is none", () => {
  assert.equal(readLimit("0"), Infinity);
  assert.equal(readLimit("7"), 7);
  assert.throws(() => readLimit("-1"), RangeError);
});
