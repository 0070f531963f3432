import assert from "node:assert/strict";
import { Op } from "../src/protocol/op.ts";
import { TestClient, text } from "./_helpers.ts";
import { cli, LineReader, stopChild } from "./_process.ts";

Deno.test("cli exits 2 with a one-line message naming a bad flag or value", async () => {
  for (
    const [args, name] of [
      [["--bogus"], "--bogus"],
      [["--heartbeat-timeout", "10"], "--heartbeat-timeout"],
      [["--slow", "sometimes"], "--slow"],
      [["--tcp", "nowhere"], "--tcp"],
    ] as const
  ) {
    const out = await cli([...args]).output();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 2, stderr);
    assert.equal(stderr.split("\n").length, 1, stderr);
    assert.ok(stderr.startsWith("comet: "), stderr);
    assert.ok(stderr.includes(name), stderr);
  }
});

Deno.test("cli reads every flag's variable and names a bad one", async () => {
  const out = await cli(["--tcp", "127.0.0.1:0"], { COMET_UPSTREAM_RATE: "fast" }).output();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(out.code, 2, stderr);
  assert.equal(
    stderr,
    "comet: Invalid value for COMET_UPSTREAM_RATE: Must be an integer of at least 0: fast",
  );
});

Deno.test("cli prints help and exits 0", async () => {
  const out = await cli(["--help"]).output();
  assert.equal(out.code, 0);
  assert.match(new TextDecoder().decode(out.stdout), /--heartbeat-timeout D/);
});

Deno.test("cli serves clients and on SIGTERM sends op 6 and exits 0", async () => {
  const child = cli(["--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--api", "127.0.0.1:0"])
    .spawn();
  const stderr = new LineReader(child.stderr);
  const stdout = new LineReader(child.stdout);
  try {
    const m = await stderr.line(
      /Comet listening tcp=127\.0\.0\.1:(\d+) ws=127\.0\.0\.1:\d+ api=127\.0\.0\.1:(\d+)/,
    );
    const [tcpPort, apiPort] = [Number(m[1]), Number(m[2])];
    await using client = await TestClient.auth(tcpPort, { mid: 1, key: "k", accepts: [1000] });
    const res = await fetch(`http://127.0.0.1:${apiPort}/goim/push/keys?operation=1000&keys=k`, {
      method: "POST",
      body: "before shutdown",
    });
    assert.equal((await res.json()).code, 0);
    assert.equal(text((await client.nextOp(1000)).body), "before shutdown");
    child.kill("SIGTERM");
    const bye = await client.nextOp(Op.DisconnectReply, 5_000);
    assert.equal(text(bye.body), "server shutting down");
    assert.ok(await client.closedByServer(5_000));
    const status = await child.status;
    assert.equal(status.code, 0, stderr.log);
  } finally {
    await stopChild(child, stderr, stdout);
  }
});
