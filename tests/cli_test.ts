import assert from "node:assert/strict";
import { Op } from "../src/protocol/op.ts";
import { TestClient, text } from "./_helpers.ts";
import { cli, LineReader, ROOT, stopChild } from "./_process.ts";
import { VERSION } from "../src/version.ts";

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

Deno.test("cli prints its version and its help with no permissions at all", async () => {
  for (
    const [flag, expected] of [["--version", /^comet \d+\.\d+\.\d+ \(deno /], [
      "--help",
      /--version/,
    ]] as const
  ) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "src/cli.ts", flag],
      cwd: ROOT,
      env: { COMET_API_TOKEN: "unreadable without --allow-env" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.match(stdout, expected);
    assert.equal(stderr, "", flag);
  }
  const out = await cli(["--version", "--tcp", "0.0.0.0:3101"]).output();
  const line = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, "--version starts no server and checks no exposure");
  assert.equal(
    line,
    `comet ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8}, typescript ${Deno.version.typescript}, ${Deno.build.target})`,
  );
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
