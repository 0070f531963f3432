// The hub closes a connection when its session's expiresAt passes, on the one
// timer heap it also uses for heartbeat deadlines.
import assert from "node:assert/strict";
import { JwtOperator } from "../src/auth/jwt_operator.ts";
import { Op } from "../src/protocol/op.ts";
import type { Operator } from "../src/server/operator.ts";
import { startServer, TestClient, text } from "./_helpers.ts";
import { hmacKey, nowSeconds, SECRET, sign } from "./_jwt.ts";

function expiring(ms: number): Operator {
  return { connect: () => ({ mid: 1, key: "k", expiresAt: Date.now() + ms }) };
}

Deno.test("expiry: the connection gets op 6 token expired at expiresAt; heartbeats do not extend it", async () => {
  await using server = startServer({ operator: expiring(300), heartbeatTimeout: 10_000 });
  await using c = await TestClient.auth(server.addrs.tcp!.port, {});
  const started = Date.now();
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setTimeout(r, 100));
    c.sendFrame(Op.Heartbeat);
    assert.equal((await c.next()).op, Op.HeartbeatReply);
  }
  const f = await c.nextOp(Op.DisconnectReply, 2_000);
  assert.equal(text(f.body), "token expired");
  const took = Date.now() - started;
  assert.ok(took >= 250 && took < 1_000, `closed after ${took} ms`);
  assert.ok(await c.closedByServer());
  assert.equal(server.comet.stats.tokenExpired, 1);
  assert.equal(server.comet.stats.heartbeatTimeouts, 0);
  assert.equal(server.comet.timers, 0);
});

Deno.test("expiry: the heartbeat deadline still applies before a far expiry", async () => {
  await using server = startServer({ operator: expiring(60_000), heartbeatTimeout: 200 });
  await using c = await TestClient.auth(server.addrs.tcp!.port, {});
  assert.ok(await c.closedByServer(2_000));
  assert.equal(server.comet.stats.heartbeatTimeouts, 1);
  assert.equal(server.comet.stats.tokenExpired, 0);
});

Deno.test("expiry: an already expired session is refused", async () => {
  await using server = startServer({ operator: expiring(-1) });
  await using c = await TestClient.connect(server.addrs.tcp!.port);
  c.sendFrame(Op.Auth, "{}");
  const f = await c.next();
  assert.equal(f.op, Op.DisconnectReply);
  assert.equal(text(f.body), "auth failed: Session has already expired");
});

Deno.test("expiry: a JWT connection is closed when its token expires", async () => {
  const operator = new JwtOperator({ algorithm: "HS256", secret: SECRET, clockSkew: 0 });
  await using server = startServer({ operator });
  // exp has whole-second resolution: +2 keeps it in the future at auth even on a loaded machine.
  const token = await sign("HS256", await hmacKey(), { sub: "7", exp: nowSeconds() + 2 });
  await using c = await TestClient.auth(server.addrs.tcp!.port, { token });
  assert.equal(server.comet.connections, 1);
  const f = await c.nextOp(Op.DisconnectReply, 3_500);
  assert.equal(text(f.body), "token expired");
  assert.ok(await c.closedByServer());
});
