// The soak script, short: 200 churning connections for 5 s against the real command, as
// `deno task soak --connections 200 --duration 5s` runs it. It exits 0 only when the server
// ends with no connections, handshakes, timers, rooms or queued frames, its heap back near
// its start, and its RSS either back near its start or no longer growing.
import assert from "node:assert/strict";
import { parseSoakArgs } from "../bench/soak.ts";
import { ROOT } from "./_process.ts";

Deno.test("soak flags: defaults, durations, and refusals", () => {
  const defaults = parseSoakArgs([]);
  assert.equal(defaults.connections, 2_000);
  assert.equal(defaults.duration, 60_000);
  assert.deepEqual([defaults.rssSlack, defaults.rssGrowth], [64, 16]);
  assert.equal(parseSoakArgs(["--rss-growth", "8"]).rssGrowth, 8);
  const o = parseSoakArgs(["--connections", "50", "--duration=1m", "--life", "500ms", "--seed=7"]);
  assert.deepEqual([o.connections, o.duration, o.life, o.seed], [50, 60_000, 500, 7]);
  assert.throws(() => parseSoakArgs(["--nope", "1"]), RangeError);
  assert.throws(() => parseSoakArgs(["--duration", "soon"]), RangeError);
  assert.throws(() => parseSoakArgs(["--connections", "0"]), RangeError);
  assert.throws(() => parseSoakArgs(["--ws-share", "0.8", "--pkg-share", "0.5"]), RangeError);
});

async function _soak(extra: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-run",
      "--allow-read",
      "bench/soak.ts",
      "--connections",
      "200",
      "--duration",
      "5s",
      ...extra,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const log = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, log);
  assert.match(log, /^soak: ok, no leaks$/m);
  assert.match(log, /at the end: connections 0, handshaking 0, timers 0, rooms 0, queued 0/);
  const sessions = Number(/^sessions: (\d+)/m.exec(log)?.[1]);
  assert.ok(sessions > 200, `the clients reconnected: ${sessions} sessions\n${log}`);
  assert.match(log, /^server rss: start [\d.]+ MiB, peak [\d.]+ MiB, end [\d.]+ MiB$/m);
  return log;
}

Deno.test("soak: 200 connections churning for 5 s leave nothing behind", async () => {
  await _soak([]);
});

Deno.test("soak: two workers, churning for 5 s, leave nothing behind on either", async () => {
  // The end figures come from /metrics, which sums the workers over the bus; the soak fails
  // when a worker did not answer, so a leak on either worker shows.
  const log = await _soak(["--workers", "2"]);
  assert.match(log, /pushes: keys \d+, mids \d+, room \d+, all \d+; \d+ received by clients/);
});
