import assert from "node:assert/strict";
import { collectMetrics, formatMetrics } from "../src/api/metrics.ts";
import type { LogFields, Logger } from "../src/log.ts";
import { Comet } from "../src/server/comet.ts";
import { acceptErrorKind, AcceptErrorLog, acceptErrors } from "../src/transport/accept_errors.ts";

function emfile(): Error {
  return Object.assign(new Error("Too many open files (os error 24)"), { code: "EMFILE" });
}

function recorder(): Logger & { lines: [string, LogFields | undefined][] } {
  const lines: [string, LogFields | undefined][] = [];
  const keep = (message: string, fields?: LogFields) => void lines.push([message, fields]);
  return { lines, debug: keep, info: keep, warn: keep, error: keep };
}

Deno.test("accept failures are told apart by kind", () => {
  assert.equal(acceptErrorKind(emfile()), "emfile");
  assert.equal(acceptErrorKind(new Error("Too many open files (os error 24)")), "emfile");
  assert.equal(acceptErrorKind(Object.assign(new Error("x"), { code: "ENFILE" })), "enfile");
  assert.equal(acceptErrorKind(new Error("Connection aborted")), "other");
  assert.equal(acceptErrorKind("not an error"), "other");
});

Deno.test("a burst of accept failures is counted whole and logged once per interval", async () => {
  const logger = recorder();
  const log = new AcceptErrorLog("test-burst", logger, 100);
  assert.deepEqual(acceptErrors().get("test-burst"), { emfile: 0 });
  for (let i = 0; i < 500; i++) log.failed(emfile());
  log.failed(new Error("something else"));
  assert.deepEqual(acceptErrors().get("test-burst"), { emfile: 500, other: 1 });
  assert.equal(logger.lines.length, 1);
  assert.match(logger.lines[0]![0], /out of file descriptors/);
  assert.equal(logger.lines[0]![1]?.listener, "test-burst");
  await new Promise((r) => setTimeout(r, 120));
  log.failed(emfile());
  assert.equal(logger.lines.length, 2);
  // The second line stands for everything since the first.
  assert.equal(logger.lines[1]![1]?.failures, 501);
});

Deno.test("metrics list accept failures by listener and error", async () => {
  await using comet = new Comet();
  new AcceptErrorLog("test-metrics", recorder()).failed(emfile());
  const text = formatMetrics(collectMetrics(comet));
  assert.match(text, /# TYPE comet_accept_errors_total counter/);
  assert.match(text, /comet_accept_errors_total\{listener="test-metrics",error="emfile"\} 1\n/);
});

Deno.test("a negative log interval is refused", () => {
  assert.throws(() => new AcceptErrorLog("x", recorder(), -1), RangeError);
});
