// Log lines as text and as JSON, and tracing a user's connections step by step
// (in the hub, and through the command's --log-format json --trace-mid).
import assert from "node:assert/strict";
import { createLogger, type LogFields } from "../src/log.ts";
import { Op } from "../src/protocol/op.ts";
import { startServer, TestClient, text, until, utf8 } from "./_helpers.ts";
import { cli, LineReader, stopChild, TCP_ONLY } from "./_process.ts";

Deno.test("log: json lines parse, with time, level, msg and the fields", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "debug", format: "json", write: (l) => lines.push(l) });
  log.debug("Debugging", { n: 1 });
  log.info("Comet listening", { tcp: "127.0.0.1:3101", nested: { a: [1, 2] } });
  log.warn("Connection failed", { key: "k", error: new TypeError("Bad thing: detail") });
  log.error("Odd fields", { msg: "shadowed", level: 9, big: 2n ** 64n, nothing: undefined });
  assert.equal(lines.length, 4);
  const parsed = lines.map((l) => JSON.parse(l));
  for (const [i, level] of ["debug", "info", "warn", "error"].entries()) {
    assert.equal(parsed[i].level, level);
    assert.ok(!Number.isNaN(Date.parse(parsed[i].time)), parsed[i].time);
    assert.ok(!lines[i]!.includes("\n"));
  }
  assert.deepEqual(Object.keys(parsed[1]).slice(0, 3), ["time", "level", "msg"]);
  assert.equal(parsed[1].msg, "Comet listening");
  assert.equal(parsed[1].tcp, "127.0.0.1:3101");
  assert.deepEqual(parsed[1].nested, { a: [1, 2] });
  assert.equal(parsed[2].error, "Bad thing: detail", "errors as their message");
  // Fields never overwrite the line's own keys.
  assert.equal(parsed[3].msg, "Odd fields");
  assert.equal(parsed[3].level, "error");
  assert.equal(parsed[3].msg_, "shadowed");
  assert.equal(parsed[3].level_, 9);
  assert.equal(parsed[3].big, "18446744073709551616");
  assert.ok(!("nothing" in parsed[3]));
});

Deno.test("log: a json line survives a field it cannot serialize", () => {
  const lines: string[] = [];
  const log = createLogger({ format: "json", write: (l) => lines.push(l) });
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  log.info("Cyclic", { cycle, ok: "yes" });
  const line = JSON.parse(lines[0]!);
  assert.equal(line.msg, "Cyclic");
  assert.equal(line.ok, "yes");
  assert.equal(typeof line.cycle, "string");
});

Deno.test("log: text stays the default; levels filter; a bad format is refused", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "warn", write: (l) => lines.push(l) });
  log.info("hidden");
  log.warn("Shown", { key: "a b", error: new Error("Boom") });
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\S+Z WARN Shown key="a b" error=Boom$/);
  // @ts-expect-error: not a format
  assert.throws(() => createLogger({ format: "xml" }), RangeError);
});

/** Trace lines from a json logger, as objects. */
function traceLines(lines: string[]): LogFields[] {
  return lines.map((l) => JSON.parse(l)).filter((o) => String(o.msg).startsWith("Trace: "));
}

Deno.test("trace: every step of a traced user's connection is logged; nothing for others", async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "info", format: "json", write: (l) => lines.push(l) });
  await using server = startServer({ logger, traceMids: [7], heartbeatTimeout: 60_000 });
  const port = server.addrs.tcp!.port;
  const { comet } = server;

  await using other = await TestClient.auth(port, {
    mid: 8,
    key: "other",
    room_id: "live://1",
    accepts: [1000],
  });
  await using traced = await TestClient.auth(port, {
    mid: 7,
    key: "traced",
    room_id: "live://1",
    accepts: [1000],
  });
  // The same steps from both; only the traced one may show up.
  for (const c of [other, traced]) {
    c.sendFrame(Op.Heartbeat);
    await c.nextOp(Op.HeartbeatReply);
    c.sendFrame(Op.Sub, "1001,1002");
    await c.nextOp(Op.SubReply);
    c.sendFrame(Op.Unsub, "1002");
    await c.nextOp(Op.UnsubReply);
    c.sendFrame(Op.SendMsg, "hello");
    await c.nextOp(Op.SendMsgReply);
  }
  assert.equal(comet.pushRoom("live://1", 1000, utf8.encode("room")), 2);
  assert.equal(comet.pushMids([7, 8], 1001, utf8.encode("mids")), 2);
  assert.equal(comet.pushKeys(["traced", "other"], 1000, utf8.encode("keys")), 2);
  assert.equal(comet.pushAll(1000, utf8.encode("all")), 2);
  for (const c of [other, traced]) {
    for (const op of [1000, 1001, 1000, 1000]) await c.nextOp(op);
    c.sendFrame(Op.ChangeRoom, "live://2");
    await c.nextOp(Op.ChangeRoomReply);
  }
  await other.close();
  assert.ok(await until(() => comet.connections === 1));
  comet.channel("traced")!.close("goodbye from the test");
  assert.ok(await traced.closedByServer());
  assert.ok(await until(() => comet.connections === 0));

  const trace = traceLines(lines);
  for (const line of trace) {
    assert.equal(line.level, "info");
    assert.equal(line.mid, 7, JSON.stringify(line));
    assert.equal(line.key, "traced");
  }
  assert.ok(!lines.some((l) => l.includes('"other"') || l.includes('"mid":8')), lines.join("\n"));
  const steps = trace.map((l) => l.msg);
  assert.deepEqual(steps, [
    "Trace: authenticated",
    "Trace: heartbeat",
    "Trace: watch",
    "Trace: unwatch",
    "Trace: upstream message",
    "Trace: push queued",
    "Trace: push queued",
    "Trace: push queued",
    "Trace: push queued",
    "Trace: room changed",
    "Trace: closed",
  ]);
  const by = (msg: string) => trace.filter((l) => l.msg === msg);
  const auth = by("Trace: authenticated")[0]!;
  assert.equal(auth.room, "live://1");
  assert.equal(auth.transport, "tcp");
  assert.equal(auth.remote, "127.0.0.1");
  assert.equal(by("Trace: heartbeat")[0]!.online, 2);
  assert.equal(by("Trace: watch")[0]!.ops, "1001,1002");
  assert.equal(by("Trace: upstream message")[0]!.bytes, 5);
  assert.deepEqual(by("Trace: push queued").map((l) => l.op), [1000, 1001, 1000, 1000]);
  assert.deepEqual(
    { from: by("Trace: room changed")[0]!.from, to: by("Trace: room changed")[0]!.to },
    { from: "live://1", to: "live://2" },
  );
  assert.equal(by("Trace: closed")[0]!.reason, "goodbye from the test");
});

Deno.test("trace: the close reason of a timeout and of a limit", async () => {
  const lines: string[] = [];
  const logger = createLogger({ format: "json", write: (l) => lines.push(l) });
  await using server = startServer({
    logger,
    traceMids: [7, 9],
    heartbeatTimeout: 150,
    limits: { upstreamRate: 1 },
  });
  const port = server.addrs.tcp!.port;
  await using quiet = await TestClient.auth(port, { mid: 7, key: "quiet" });
  await using chatty = await TestClient.auth(port, { mid: 9, key: "chatty" });
  chatty.sendFrame(Op.SendMsg, "a");
  chatty.sendFrame(Op.SendMsg, "b");
  assert.equal(
    text((await chatty.nextOp(Op.DisconnectReply)).body),
    "rate limit: upstream messages",
  );
  assert.ok(await quiet.closedByServer());
  assert.ok(await until(() => server.comet.connections === 0));
  const closed = traceLines(lines).filter((l) => l.msg === "Trace: closed");
  assert.deepEqual(
    closed.map((l) => [l.key, l.reason]).sort(),
    [["chatty", "rate limit: upstream messages"], ["quiet", "heartbeat timeout"]],
  );
});

Deno.test("cli: --log-format json writes JSON lines; --trace-mid traces that user", async () => {
  const child = cli([
    ...TCP_ONLY,
    "--log-format",
    "json",
    "--trace-mid",
    "5,6",
    "--trace-mid=42",
  ]).spawn();
  const stderr = new LineReader(child.stderr);
  const stdout = new LineReader(child.stdout);
  try {
    const listening = JSON.parse((await stderr.line(/^{.*"msg":"Comet listening".*}$/))[0]);
    assert.equal(listening.level, "info");
    assert.equal(listening.auth, "open");
    const port = Number(/:(\d+)$/.exec(listening.tcp)![1]);
    {
      await using c = await TestClient.auth(port, { mid: 42, key: "k42" });
      c.sendFrame(Op.Heartbeat);
      await c.nextOp(Op.HeartbeatReply);
    }
    {
      await using c = await TestClient.auth(port, { mid: 43, key: "k43" });
      c.sendFrame(Op.Heartbeat);
      await c.nextOp(Op.HeartbeatReply);
    }
    const auth = JSON.parse((await stderr.line(/^{.*"msg":"Trace: authenticated".*}$/))[0]);
    assert.equal(auth.mid, 42);
    await stderr.line(/^{.*"msg":"Trace: heartbeat".*}$/);
    const closed = JSON.parse((await stderr.line(/^{.*"msg":"Trace: closed".*}$/))[0]);
    assert.equal(closed.reason, "closed by the client or network");
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0, stderr.log);
    await Promise.all([stderr.finished, stdout.finished]);
    const lines = stderr.log.trim().split("\n");
    for (const line of lines) JSON.parse(line);
    assert.ok(!stderr.log.includes("k43"), stderr.log);
  } finally {
    await stopChild(child, stderr, stdout);
  }
});
