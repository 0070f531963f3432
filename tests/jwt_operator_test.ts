// The JWT operator: claims decide the session, over a real server and directly.
import assert from "node:assert/strict";
import { JwtError } from "../src/auth/jwt.ts";
import { JwtOperator } from "../src/auth/jwt_operator.ts";
import { Op } from "../src/protocol/op.ts";
import type { ConnectRequest } from "../src/server/operator.ts";
import { startServer, TestClient, text, until, utf8 } from "./_helpers.ts";
import { ecPair, hmacKey, nowSeconds, SECRET, sign } from "./_jwt.ts";

const hmac = await hmacKey();
const exp = () => nowSeconds() + 600;

function request(body: string | Uint8Array): ConnectRequest {
  return {
    body: typeof body === "string" ? utf8.encode(body) : body,
    info: { transport: "tcp", remoteAddr: { hostname: "127.0.0.1", port: 1 } },
  };
}

/** Sends an auth frame and expects op 6 with `reason`, then the server's close. */
async function expectRefused(port: number, body: string, reason: RegExp): Promise<void> {
  await using c = await TestClient.connect(port);
  c.sendFrame(Op.Auth, body);
  const f = await c.next();
  assert.equal(f.op, Op.DisconnectReply, `expected op 6, got op ${f.op}`);
  assert.match(text(f.body), reason);
  assert.ok(await c.closedByServer(), "the server closes a refused connection");
}

Deno.test("jwt operator: a good token authenticates; the claims, not the body, say who", async () => {
  await using server = startServer({
    operator: new JwtOperator({ algorithm: "HS256", secret: SECRET }),
  });
  const port = server.addrs.tcp!.port;
  const token = await sign("HS256", hmac, {
    sub: "1001",
    key: "device-a",
    room: "live://7",
    accepts: [1000, 1002],
    platform: "android",
    exp: exp(),
  });
  // The body claims to be someone else, in another room: ignored.
  await using c = await TestClient.auth(port, {
    token,
    mid: 1,
    key: "stolen",
    room_id: "live://admin",
    platform: "web",
    accepts: [9999],
  });
  const ch = server.comet.channel("device-a");
  assert.ok(ch, "the channel has the key from the claims");
  assert.equal(server.comet.channel("stolen"), undefined);
  assert.equal(ch.mid, 1001);
  assert.equal(ch.room, "live://7");
  assert.equal(ch.platform, "android");
  assert.deepEqual(ch.watched().sort(), [1000, 1002]);
  assert.equal(server.comet.roomOnline("live://admin"), 0);
  // Pushes by the claimed mid reach it, for the claimed ops only.
  assert.equal(server.comet.pushMids([1001], 1000, utf8.encode("hi")), 1);
  const f = await c.next();
  assert.equal(f.op, 1000);
  assert.equal(text(f.body), "hi");
  assert.equal(server.comet.pushMids([1001], 9999, utf8.encode("no")), 0);
});

Deno.test("jwt operator: a bare token as the whole body works; jti becomes the key", async () => {
  await using server = startServer({
    operator: new JwtOperator({ algorithm: "HS256", secret: SECRET }),
  });
  const port = server.addrs.tcp!.port;
  const token = await sign("HS256", hmac, { sub: 55, jti: "tok-1", exp: exp() });
  await using c = await TestClient.connect(port);
  const seq = c.sendFrame(Op.Auth, `${token}\n`);
  const f = await c.next();
  assert.equal(f.op, Op.AuthReply);
  assert.equal(f.seq, seq);
  const ch = server.comet.channel("tok-1");
  assert.equal(ch?.mid, 55);
  assert.equal(ch?.room, "");
});

Deno.test("jwt operator: without key or jti the hub generates a key", async () => {
  await using server = startServer({
    operator: new JwtOperator({ algorithm: "HS256", secret: SECRET }),
  });
  const token = await sign("HS256", hmac, { sub: "8", exp: exp() });
  await using _c = await TestClient.auth(server.addrs.tcp!.port, { token, accepts: [1000] });
  assert.ok(await until(() => server.comet.connections === 1));
  const [ch] = server.comet.buckets.flatMap((b) => [...b.channels.values()]);
  assert.match(ch!.key, /^[0-9a-f-]{36}$/);
  assert.equal(ch!.mid, 8);
  // No accepts claim: the body's accepts are the client's own preference.
  assert.deepEqual(ch!.watched(), [1000]);
});

Deno.test("jwt operator: bad, expired and missing tokens get op 6 and are closed", async () => {
  const { privateKey, publicPem } = await ecPair();
  await using server = startServer({
    operator: new JwtOperator({ algorithm: "ES256", publicKey: publicPem, audience: "comet" }),
  });
  const port = server.addrs.tcp!.port;
  const good = { sub: "1", aud: "comet", exp: exp() };
  const json = (token: string) => JSON.stringify({ token });
  await expectRefused(
    port,
    json(await sign("ES256", privateKey, { ...good, exp: nowSeconds() - 3600 })),
    /^auth failed: Token has expired: at /,
  );
  await expectRefused(
    port,
    json(await sign("ES256", (await ecPair()).privateKey, good)),
    /^auth failed: Token signature is invalid$/,
  );
  await expectRefused(
    port,
    json(await sign("HS256", await hmacKey(publicPem), good)),
    /^auth failed: Token algorithm must be ES256: HS256$/,
  );
  await expectRefused(
    port,
    json(await sign("ES256", privateKey, { ...good, aud: "billing" })),
    /^auth failed: Token audience is not accepted/,
  );
  await expectRefused(
    port,
    json(await sign("ES256", privateKey, { ...good, sub: "alice" })),
    /^auth failed: Token sub is not a user id/,
  );
  await expectRefused(
    port,
    json(await sign("ES256", privateKey, { aud: "comet", exp: exp() })),
    /^auth failed: Token has no sub claim$/,
  );
  await expectRefused(port, JSON.stringify({ mid: 1, room_id: "live://1" }), /no token field/);
  await expectRefused(port, "not-a-token", /^auth failed: Token is not three base64url parts$/);
  assert.equal(server.comet.connections, 0);
  assert.equal(server.comet.stats.authFailed, 8);
});

Deno.test("jwt operator: connect returns the expiry for the hub to close at", async () => {
  const op = new JwtOperator({ algorithm: "HS256", secret: SECRET, clockSkew: 5_000 });
  const e = exp();
  const session = await op.connect(request(await sign("HS256", hmac, { sub: "3", exp: e })));
  assert.deepEqual(session, { mid: 3, expiresAt: e * 1000 + 5_000 });
  const noExp = new JwtOperator({ algorithm: "HS256", secret: SECRET, requireExp: false });
  const open = await noExp.connect(request(await sign("HS256", hmac, { sub: "3" })));
  assert.equal(open.expiresAt, undefined);
});

Deno.test("jwt operator: claims of the wrong type are refused as claims errors", async () => {
  const op = new JwtOperator({ algorithm: "HS256", secret: SECRET });
  await op.ready();
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ sub: -1 }, /sub is not a user id/],
    [{ sub: 1.5 }, /sub is not a user id/],
    [{ sub: "007" }, /sub is not a user id/],
    [{ sub: "9007199254740993" }, /sub is not a user id/],
    [{ sub: 2 ** 53 }, /sub is not a user id/],
    [{ sub: "1", room: 5 }, /claim room is not a string/],
    [{ sub: "1", key: "k".repeat(300) }, /claim key is not a string/],
    [{ sub: "1", accepts: [1, "2"] }, /accepts is not an array/],
    [{ sub: "1", accepts: [2 ** 31] }, /accepts is not an array/],
  ];
  for (const [claims, message] of cases) {
    const token = await sign("HS256", hmac, { exp: exp(), ...claims });
    await assert.rejects(op.connect(request(token)), (err: unknown) => {
      assert.ok(err instanceof JwtError);
      assert.equal(err.reason, "claims");
      assert.match(err.message, message);
      return true;
    });
  }
  const token = await sign("HS256", hmac, { sub: "1", exp: exp() });
  await assert.rejects(op.connect(request(new Uint8Array([0xff]))), TypeError);
  await assert.rejects(op.connect(request("   ")), { name: "TypeError", message: /empty/ });
  await assert.rejects(op.connect(request("[1]")), JwtError);
  await assert.rejects(op.connect(request("{oops")), { message: /not valid JSON/ });
  await assert.rejects(op.connect(request(JSON.stringify({ token: 1 }))), { message: /no token/ });
  await assert.rejects(
    op.connect(request(JSON.stringify({ token, accepts: "1000" }))),
    { message: /accepts/ },
  );
});

Deno.test("jwt operator: a token's rooms confine op 12; other rooms are refused", async () => {
  await using server = startServer({
    operator: new JwtOperator({ algorithm: "HS256", secret: SECRET }),
  });
  const port = server.addrs.tcp!.port;
  const token = await sign("HS256", hmac, {
    sub: "5",
    key: "roomy",
    room: "live://1",
    rooms: ["live://2"],
    exp: exp(),
  });
  await using c = await TestClient.auth(port, { token });
  // A room the token names: allowed, and so is leaving.
  let seq = c.sendFrame(Op.ChangeRoom, "live://2");
  assert.deepEqual([(await c.next()).op, seq], [Op.ChangeRoomReply, seq]);
  assert.equal(server.comet.roomOnline("live://2"), 1);
  seq = c.sendFrame(Op.ChangeRoom, "");
  assert.equal((await c.next()).op, Op.ChangeRoomReply);
  // A room it does not name: op 6 and closed, never joined.
  c.sendFrame(Op.ChangeRoom, "live://admin");
  const f = await c.next();
  assert.equal(f.op, Op.DisconnectReply);
  assert.equal(text(f.body), "room refused: live://admin");
  assert.ok(await c.closedByServer());
  assert.equal(server.comet.roomOnline("live://admin"), 0);
  assert.equal(server.comet.stats.roomRefused, 1);

  // A token with only `room` may not leave it for another room either.
  const single = await sign("HS256", hmac, {
    sub: "6",
    key: "single",
    room: "live://9",
    exp: exp(),
  });
  await using d = await TestClient.auth(port, { token: single });
  d.sendFrame(Op.ChangeRoom, "live://10");
  assert.equal(text((await d.nextOp(Op.DisconnectReply)).body), "room refused: live://10");
});

Deno.test("jwt operator: a token without room claims lets op 12 go anywhere, as goim", async () => {
  await using server = startServer({
    operator: new JwtOperator({ algorithm: "HS256", secret: SECRET }),
  });
  const token = await sign("HS256", hmac, { sub: "8", key: "free", exp: exp() });
  await using c = await TestClient.auth(server.addrs.tcp!.port, { token });
  c.sendFrame(Op.ChangeRoom, "live://anywhere");
  assert.equal((await c.next()).op, Op.ChangeRoomReply);
  assert.equal(server.comet.roomOnline("live://anywhere"), 1);
});
