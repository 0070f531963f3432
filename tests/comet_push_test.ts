// Integration tests of pushes over real loopback TCP sockets: to keys, users,
// rooms and everyone, directly and through the goim HTTP push API, and the
// slow-consumer policies.
import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import type { CometServer } from "../src/serve.ts";
import { Comet } from "../src/server/comet.ts";
import { silentLogger } from "../src/log.ts";
import { api, startServer, TestClient, text, until, utf8 } from "./_helpers.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function port(server: CometServer): number {
  return server.addrs.tcp!.port;
}

async function expectPush(c: TestClient, op: number, body: string | Uint8Array): Promise<void> {
  const f = await c.next();
  assert.equal(f.op, op, `expected op ${op}, got op ${f.op}`);
  assert.equal(f.seq, 0);
  assert.equal(f.ver, 1);
  if (typeof body === "string") assert.equal(text(f.body), body);
  else assert.deepEqual(f.body, body);
}

/**
 * Proves nothing was queued to `c` before now: the reply to a heartbeat sent
 * now is the very next frame.
 */
async function assertNothingQueued(c: TestClient): Promise<void> {
  const seq = c.sendFrame(Op.Heartbeat);
  const f = await c.next();
  assert.equal(f.op, Op.HeartbeatReply, `expected no push, got op ${f.op} "${text(f.body)}"`);
  assert.equal(f.seq, seq);
}

async function post(server: CometServer, path: string, body: string | Uint8Array<ArrayBuffer>) {
  const res = await api(server, path, { method: "POST", body });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.code, 0);
  return res;
}

/** Authenticates a raw socket that the test never reads from again. */
async function rawAuth(p: number, auth: Record<string, unknown>): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: p });
  const frame = encodeFrame(Op.Auth, 1, utf8.encode(JSON.stringify(auth)));
  for (let at = 0; at < frame.length;) at += await conn.write(frame.subarray(at));
  const reply = new Uint8Array(16);
  for (let got = 0; got < 16;) {
    const n = await conn.read(reply.subarray(got));
    if (n === null) throw new Error("Closed during auth");
    got += n;
  }
  assert.equal(new DataView(reply.buffer).getInt32(8), Op.AuthReply);
  return conn;
}

// ---------------------------------------------------------------- keys

Deno.test("push to keys reaches only watching connections with those keys", async () => {
  await using server = startServer();
  const comet = server.comet;
  const p = port(server);
  await using a = await TestClient.auth(p, { key: "a", accepts: [1000] });
  await using b = await TestClient.auth(p, { key: "b", accepts: [1000, 1001] });
  await using deaf = await TestClient.auth(p, { key: "deaf", accepts: [1001] });
  await using other = await TestClient.auth(p, { key: "other", accepts: [1000] });

  const n = comet.pushKeys(["a", "b", "deaf", "missing"], 1000, utf8.encode("to keys"));
  assert.equal(n, 2);
  await expectPush(a, 1000, "to keys");
  await expectPush(b, 1000, "to keys");
  await assertNothingQueued(deaf);
  await assertNothingQueued(other);
  assert.equal(comet.stats.pushes.keys, 1);
  assert.equal(comet.stats.deliveries, 2);

  // Binary bodies arrive byte for byte; an empty body is an empty frame body.
  const bin = new Uint8Array(256).map((_, i) => i);
  assert.equal(comet.pushKeys(["b"], 1001, bin), 1);
  assert.equal(comet.pushKeys(["b"], 1001, new Uint8Array(0)), 1);
  await expectPush(b, 1001, bin);
  await expectPush(b, 1001, "");
});

Deno.test("push to keys over the HTTP API", async () => {
  await using server = startServer();
  const p = port(server);
  await using a = await TestClient.auth(p, { key: "a", accepts: [1000] });
  await using b = await TestClient.auth(p, { key: "b", accepts: [1000] });
  await using c = await TestClient.auth(p, { key: "c", accepts: [1000] });
  await using deaf = await TestClient.auth(p, { key: "deaf", accepts: [] });
  await post(server, "/goim/push/keys?operation=1000&keys=a&keys=b&keys=deaf", "via http");
  await expectPush(a, 1000, "via http");
  await expectPush(b, 1000, "via http");
  await assertNothingQueued(c);
  await assertNothingQueued(deaf);
  const bin: Uint8Array<ArrayBuffer> = new Uint8Array([0, 255, 1, 254, 10, 13]);
  await post(server, "/goim/push/keys?operation=1000&keys=c", bin);
  await expectPush(c, 1000, bin);
  const bad = await api(server, "/goim/push/keys?operation=x&keys=a", {
    method: "POST",
    body: "nope",
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.code, -400);
  await assertNothingQueued(a);
});

// ---------------------------------------------------------------- mids

Deno.test("push to mids reaches every device of the user", async () => {
  await using server = startServer();
  const comet = server.comet;
  const p = port(server);
  await using phone = await TestClient.auth(p, { mid: 42, key: "phone", accepts: [1000] });
  await using laptop = await TestClient.auth(p, { mid: 42, key: "laptop", accepts: [1000] });
  await using tablet = await TestClient.auth(p, { mid: 42, key: "tablet", accepts: [1001] });
  await using other = await TestClient.auth(p, { mid: 43, key: "other", accepts: [1000] });
  await using anon = await TestClient.auth(p, { mid: 0, key: "anon", accepts: [1000] });

  assert.equal(comet.pushMids([42], 1000, utf8.encode("to 42")), 2);
  await expectPush(phone, 1000, "to 42");
  await expectPush(laptop, 1000, "to 42");
  await assertNothingQueued(tablet);
  await assertNothingQueued(other);
  // mid 0 is anonymous: not indexed.
  assert.equal(comet.pushMids([0], 1000, utf8.encode("to 0")), 0);
  await assertNothingQueued(anon);

  // One device leaves; the others still get the user's pushes.
  await phone.close();
  assert.ok(await until(() => comet.connections === 4));
  assert.equal(comet.pushMids([42, 43, 44], 1000, utf8.encode("again")), 2);
  await expectPush(laptop, 1000, "again");
  await expectPush(other, 1000, "again");
  await laptop.close();
  await tablet.close();
  assert.ok(await until(() => comet.connections === 2));
  assert.equal(comet.pushMids([42], 1000, utf8.encode("gone")), 0);
});

Deno.test("push to mids over the HTTP API", async () => {
  await using server = startServer();
  const p = port(server);
  await using a1 = await TestClient.auth(p, { mid: 1, key: "a1", accepts: [1002] });
  await using a2 = await TestClient.auth(p, { mid: 1, key: "a2", accepts: [1002] });
  await using b = await TestClient.auth(p, { mid: 2, key: "b", accepts: [1002] });
  await using c = await TestClient.auth(p, { mid: 3, key: "c", accepts: [1002] });
  await post(server, "/goim/push/mids?operation=1002&mids=1&mids=2", "users");
  await expectPush(a1, 1002, "users");
  await expectPush(a2, 1002, "users");
  await expectPush(b, 1002, "users");
  await assertNothingQueued(c);
});

// ---------------------------------------------------------------- rooms

Deno.test("push to a room reaches every member regardless of accepts", async () => {
  await using server = startServer({ buckets: 4 });
  const comet = server.comet;
  const p = port(server);
  const members: TestClient[] = [];
  try {
    // Enough members to spread over several buckets.
    for (let i = 0; i < 12; i++) {
      const accepts = i % 2 === 0 ? [] : [1000];
      members.push(await TestClient.auth(p, { key: `m${i}`, room_id: "live://1000", accepts }));
    }
    await using outsider = await TestClient.auth(p, {
      key: "out",
      room_id: "live://1001",
      accepts: [1000],
    });
    await using roomless = await TestClient.auth(p, { key: "none", accepts: [1000] });
    assert.equal(comet.pushRoom("live://1000", 1000, utf8.encode("room")), 12);
    for (const m of members) await expectPush(m, 1000, "room");
    await assertNothingQueued(outsider);
    await assertNothingQueued(roomless);
    assert.equal(comet.pushRoom("live://404", 1000, utf8.encode("empty")), 0);
    // Ops the members do not watch still reach them in a room push.
    assert.equal(comet.pushRoom("live://1000", 2000, utf8.encode("any op")), 12);
    for (const m of members) await expectPush(m, 2000, "any op");
  } finally {
    for (const m of members) await m.close();
  }
});

Deno.test("push to a room over the HTTP API", async () => {
  await using server = startServer();
  const p = port(server);
  await using a = await TestClient.auth(p, { key: "a", room_id: "live://1000" });
  await using b = await TestClient.auth(p, { key: "b", room_id: "live://1000", accepts: [7] });
  await using c = await TestClient.auth(p, { key: "c", room_id: "chat://1000" });
  await post(server, "/goim/push/room?operation=1000&type=live&room=1000", "live room");
  await expectPush(a, 1000, "live room");
  await expectPush(b, 1000, "live room");
  await assertNothingQueued(c);
  await post(server, "/goim/push/room?operation=1001&type=chat&room=1000", "chat room");
  await expectPush(c, 1001, "chat room");
  await assertNothingQueued(a);
});

// ---------------------------------------------------------------- all

Deno.test("push to all reaches every watching connection in any room", async () => {
  await using server = startServer();
  const comet = server.comet;
  const p = port(server);
  await using r1 = await TestClient.auth(p, { key: "r1", room_id: "live://1", accepts: [1000] });
  await using r2 = await TestClient.auth(p, { key: "r2", room_id: "live://2", accepts: [1000] });
  await using none = await TestClient.auth(p, { key: "n", accepts: [1000, 1001] });
  await using deaf = await TestClient.auth(p, { key: "d", room_id: "live://1", accepts: [1001] });
  await using pending = await TestClient.connect(p);
  assert.ok(await until(() => comet.handshaking === 1));
  assert.equal(comet.pushAll(1000, utf8.encode("everyone")), 3);
  await expectPush(r1, 1000, "everyone");
  await expectPush(r2, 1000, "everyone");
  await expectPush(none, 1000, "everyone");
  await assertNothingQueued(deaf);
  assert.ok(await pending.silent(50), "unauthenticated connections get no pushes");
  assert.equal(comet.stats.pushes.all, 1);
  assert.equal(comet.stats.deliveries, 3);
});

Deno.test("push to all over the HTTP API, at once and paced", async () => {
  await using server = startServer();
  const p = port(server);
  await using a = await TestClient.auth(p, { key: "a", room_id: "live://1", accepts: [1000] });
  await using b = await TestClient.auth(p, { key: "b", accepts: [1000] });
  await using deaf = await TestClient.auth(p, { key: "deaf", accepts: [] });
  await post(server, "/goim/push/all?operation=1000", "broadcast");
  await expectPush(a, 1000, "broadcast");
  await expectPush(b, 1000, "broadcast");
  await assertNothingQueued(deaf);
  await post(server, "/goim/push/all?operation=1000&speed=1000000", "paced");
  await expectPush(a, 1000, "paced");
  await expectPush(b, 1000, "paced");
});

Deno.test("pushes keep their order per connection", async () => {
  await using server = startServer();
  const comet = server.comet;
  await using c = await TestClient.auth(port(server), {
    key: "order",
    mid: 9,
    room_id: "live://o",
    accepts: [1000],
  });
  for (let i = 0; i < 60; i++) {
    const body = utf8.encode(`#${i}`);
    if (i % 4 === 0) comet.pushKeys(["order"], 1000, body);
    else if (i % 4 === 1) comet.pushMids([9], 1000, body);
    else if (i % 4 === 2) comet.pushRoom("live://o", 1000, body);
    else comet.pushAll(1000, body);
    if (i % 10 === 0) await sleep(0);
  }
  for (let i = 0; i < 60; i++) await expectPush(c, 1000, `#${i}`);
});

Deno.test("a connection moved to another room gets the old room's pushes first, then the new", async () => {
  await using server = startServer();
  const comet = server.comet;
  await using c = await TestClient.auth(port(server), {
    key: "mover",
    room_id: "live://a",
    accepts: [1000],
  });
  await using stays = await TestClient.auth(port(server), { key: "stays", room_id: "live://a" });
  const ch = comet.channel("mover")!;
  // All in one turn: the writer has taken none of these when the room changes.
  for (let i = 0; i < 3; i++) comet.pushRoom("live://a", 1000, utf8.encode(`a${i}`));
  comet.changeRoom(ch, "live://b");
  assert.equal(comet.pushRoom("live://a", 1000, utf8.encode("a3")), 1, "only the one that stayed");
  for (let i = 0; i < 2; i++) comet.pushRoom("live://b", 1000, utf8.encode(`b${i}`));
  for (const body of ["a0", "a1", "a2", "b0", "b1"]) await expectPush(c, 1000, body);
  await assertNothingQueued(c);
  for (const body of ["a0", "a1", "a2", "a3"]) await expectPush(stays, 1000, body);
});

// ---------------------------------------------------------------- slow consumers

/**
 * Pushes 64 KiB messages to `key` (a client that never reads) a couple at a
 * time, yielding in between so its writer drains into the socket, until
 * `done` says so. Meanwhile a reading client gets a small push every round.
 */
async function flood(
  server: CometServer,
  key: string,
  reader: TestClient,
  done: () => boolean,
): Promise<number> {
  const comet = server.comet;
  const big = new Uint8Array(64 * 1024).fill(0x5a);
  let round = 0;
  // Loopback socket buffers hold a few MiB at most; 1000 rounds is ~128 MiB.
  while (!done() && round < 1000) {
    comet.pushKeys([key], 1000, big);
    comet.pushKeys([key], 1000, big);
    assert.equal(comet.pushKeys(["reader"], 1000, utf8.encode(`tick ${round}`)), 1);
    round++;
    await sleep(0);
    // Keep the reading client's frames from piling up in the test.
    while (reader.buffered.length > 0) {
      const f = await reader.next();
      assert.equal(text(f.body).startsWith("tick "), true);
    }
  }
  assert.ok(done(), `the slow-consumer policy never applied in ${round} rounds`);
  return round;
}

/** The body of the next push to `reader` that is not one of flood()'s ticks, in order. */
async function afterTicks(reader: TestClient): Promise<string> {
  let last = -1;
  for (;;) {
    const f = await reader.next();
    assert.equal(f.op, 1000);
    const body = text(f.body);
    const tick = /^tick (\d+)$/.exec(body);
    if (!tick) return body;
    assert.ok(Number(tick[1]) > last, "ticks arrive in order");
    last = Number(tick[1]);
  }
}

Deno.test("a slow consumer is disconnected under slow: close; others keep receiving", async () => {
  await using server = startServer({ queueSize: 4, slow: "close", closeGrace: 200 });
  const comet = server.comet;
  const p = port(server);
  const slow = await rawAuth(p, { key: "slow", accepts: [1000] });
  try {
    await using reader = await TestClient.auth(p, { key: "reader", accepts: [1000] });
    await flood(server, "slow", reader, () => comet.stats.slowClosed > 0);
    assert.equal(comet.stats.slowClosed, 1);
    // Its writer is stuck on a full socket: the close grace cuts it off.
    assert.ok(await until(() => comet.channel("slow") === undefined && comet.connections === 1));
    assert.equal(comet.pushKeys(["slow"], 1000, utf8.encode("x")), 0);
    assert.equal(comet.pushKeys(["reader"], 1000, utf8.encode("still here")), 1);
    assert.equal(await afterTicks(reader), "still here");
    assert.equal(comet.stats.slowClosed, 1);
  } finally {
    slow.close();
  }
  assert.ok(await until(() => comet.connections === 0 && comet.timers === 0));
});

Deno.test("a slow consumer loses messages under slow: drop and stays connected", async () => {
  await using server = startServer({ queueSize: 4, slow: "drop" });
  const comet = server.comet;
  const p = port(server);
  const slow = await rawAuth(p, { key: "slow", accepts: [1000] });
  try {
    await using reader = await TestClient.auth(p, { key: "reader", accepts: [1000] });
    await flood(server, "slow", reader, () => comet.stats.dropped > 0);
    const dropped = comet.stats.dropped;
    assert.equal(comet.stats.slowClosed, 0);
    const ch = comet.channel("slow");
    assert.ok(ch);
    assert.equal(ch.state, "open");
    // Six pushes in one go: the queue holds four at most, so two or more are dropped.
    let queued = 0;
    for (let i = 0; i < 6; i++) queued += comet.pushKeys(["slow"], 1000, utf8.encode("more"));
    assert.ok(queued <= 4);
    assert.equal(comet.stats.dropped, dropped + 6 - queued);
    assert.equal(ch.state, "open");
    assert.equal(comet.connections, 2);
    assert.equal(comet.pushKeys(["reader"], 1000, utf8.encode("fine")), 1);
    assert.equal(await afterTicks(reader), "fine");
  } finally {
    slow.close();
  }
  assert.ok(await until(() => comet.connections === 0 && comet.timers === 0));
});

Deno.test("a slow consumer that keeps sending heartbeats is still cut off", async () => {
  await using server = startServer({
    queueSize: 4,
    slow: "close",
    closeGrace: 200,
    heartbeatTimeout: 60_000,
  });
  const comet = server.comet;
  const p = port(server);
  const slow = await rawAuth(p, { key: "slow", accepts: [1000] });
  try {
    await using reader = await TestClient.auth(p, { key: "reader", accepts: [1000] });
    await flood(server, "slow", reader, () => comet.stats.slowClosed > 0);
    // The client never reads but keeps heartbeating: that must not extend the grace.
    const beat = encodeFrame(Op.Heartbeat, 1);
    const gone = until(() => comet.channel("slow") === undefined, 2000);
    let stop = false;
    const beating = (async () => {
      while (!stop) {
        try {
          await slow.write(beat);
        } catch {
          return;
        }
        await sleep(20);
      }
    })();
    const closed = await gone;
    stop = true;
    await beating;
    assert.ok(closed, "the slow consumer is cut off after the close grace");
  } finally {
    slow.close();
  }
  assert.ok(await until(() => comet.connections === 0 && comet.timers === 0));
});

Deno.test("pushes reach a hundred concurrent clients", async () => {
  await using server = startServer();
  const comet = server.comet;
  const p = port(server);
  const clients = await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      TestClient.auth(p, {
        key: `c${i}`,
        mid: 1 + (i % 10),
        room_id: `live://${i % 3}`,
        accepts: [1000],
      })),
  );
  try {
    assert.equal(comet.connections, 100);
    assert.equal(comet.roomOnline("live://0"), 34);
    assert.equal(comet.pushAll(1000, utf8.encode("all")), 100);
    assert.equal(comet.pushRoom("live://1", 1001, utf8.encode("room 1")), 33);
    assert.equal(comet.pushMids([1], 1000, utf8.encode("mid 1")), 10);
    await Promise.all(clients.map(async (c, i) => {
      await expectPush(c, 1000, "all");
      if (i % 3 === 1) await expectPush(c, 1001, "room 1");
      if (i % 10 === 0) await expectPush(c, 1000, "mid 1");
      await assertNothingQueued(c);
    }));
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  assert.ok(await until(() => comet.connections === 0 && comet.rooms.size === 0));
});

Deno.test("the hub refuses to push the protocol's own operations", async () => {
  await using comet = new Comet({ logger: silentLogger });
  for (const op of [0, 6, 9, 17, 18]) {
    assert.throws(() => comet.pushRoom("live://1", op, new Uint8Array()), RangeError);
    assert.throws(() => comet.pushKeys(["k"], op, new Uint8Array()), RangeError);
    assert.throws(() => comet.pushMids([1], op, new Uint8Array()), RangeError);
    assert.throws(() => comet.pushAll(op, new Uint8Array()), /reserved by the protocol/);
  }
  assert.equal(comet.pushRoom("live://1", 19, new Uint8Array()), 0);
});

Deno.test("push: deliver takes each kind of push as the method of its kind does", async () => {
  await using comet = new Comet({ logger: silentLogger });
  const body = utf8.encode("x");
  assert.equal(comet.deliver({ kind: "keys", op: 1000, keys: ["k"], body }), 0);
  assert.equal(comet.deliver({ kind: "mids", op: 1000, mids: [7], body }), 0);
  assert.equal(comet.deliver({ kind: "room", op: 1000, room: "live://1", body }), 0);
  assert.equal(comet.deliver({ kind: "all", op: 1000, speed: 0, body }), 0);
  assert.deepEqual(comet.stats.pushes, { keys: 1, mids: 1, room: 1, all: 1 });
  assert.throws(() => comet.deliver({ kind: "room", op: Op.Auth, room: "r", body }), RangeError);
  assert.throws(() => comet.deliver({ kind: "all", op: 1000, speed: -1, body }), RangeError);
});
