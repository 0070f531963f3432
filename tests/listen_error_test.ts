import assert from "node:assert/strict";
import { parseConfig } from "../src/config.ts";
import { silentLogger } from "../src/log.ts";
import { serveConfig, StartError } from "../src/serve_config.ts";
import { bindListener } from "../src/transport/acceptor.ts";
import { hostPort } from "../src/host_port.ts";
import { AddressInUseError } from "../src/transport/listen_error.ts";
import { startServer } from "./_helpers.ts";
import { cli } from "./_process.ts";

/** What `fn` throws; fails when it returns. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  assert.fail("Expected an error");
}

/** A listener holding a loopback port, so that binding it again fails. */
function holdPort(): Deno.TcpListener {
  return Deno.listen({ hostname: "127.0.0.1", port: 0 });
}

Deno.test("binding a port already in use names the address and the listener", () => {
  using held = holdPort();
  const err = thrown(() => bindListener({ port: held.addr.port }, undefined, "tcp"));
  assert.ok(err instanceof AddressInUseError);
  assert.equal(err.address, `127.0.0.1:${held.addr.port}`);
  assert.equal(err.listener, "tcp");
  assert.ok(err.cause instanceof Deno.errors.AddrInUse);
  assert.equal(err.message, `Address is already in use: 127.0.0.1:${held.addr.port} (tcp)`);
});

Deno.test("an IPv6 address in use is written in brackets", () => {
  assert.equal(hostPort("::1", 3101), "[::1]:3101");
  assert.equal(hostPort("127.0.0.1", 3101), "127.0.0.1:3101");
  assert.equal(
    hostPort("[::1]", 3101),
    "[::1]:3101",
    "brackets already there are kept, not doubled",
  );
});

Deno.test("serve names each socket listener whose port is taken", () => {
  for (const listener of ["tcp", "ws", "pkg"] as const) {
    using held = holdPort();
    const at = { hostname: "127.0.0.1", port: held.addr.port };
    const err = thrown(() =>
      startServer({
        tcp: listener === "tcp" ? at : false,
        ws: listener === "ws" ? at : false,
        pkg: listener === "pkg" ? at : false,
        api: false,
      })
    );
    assert.ok(err instanceof AddressInUseError, String(err));
    assert.equal(err.listener, listener);
    assert.equal(err.address, `127.0.0.1:${held.addr.port}`);
  }
});

Deno.test("the command's start error names the flag and the address, with exit status 2", async () => {
  for (const flag of ["--tcp", "--ws", "--api"]) {
    using held = holdPort();
    const busy = `127.0.0.1:${held.addr.port}`;
    const args = ["--tcp", "off", "--ws", "off", "--api", "off", flag, busy];
    const err = await serveConfig(parseConfig(args), {
      logger: silentLogger,
      signal: AbortSignal.abort(),
    }).then(() => undefined, (e) => e);
    assert.ok(err instanceof StartError, String(err));
    assert.equal(err.message, `cannot listen: ${flag} ${busy} is already in use`);
    assert.equal(err.code, 2);
  }
});

for (const workers of ["1", "2"]) {
  Deno.test(`cli with --workers ${workers}: a busy port is one line on stderr and exit status 2`, async () => {
    using held = holdPort();
    const busy = `127.0.0.1:${held.addr.port}`;
    const out = await cli(["--workers", workers, "--tcp", busy, "--ws", "off", "--api", "off"])
      .output();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 2, stderr);
    assert.equal(stderr, `comet: cannot listen: --tcp ${busy} is already in use`);
  });
}
