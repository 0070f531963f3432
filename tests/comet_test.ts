// Integration tests of the comet session protocol over real loopback TCP sockets:
// auth, heartbeat, sub/unsub, change room, duplicate keys, upstream messages,
// framing, bad input, timeouts, shutdown and online counts.
import assert from "node:assert/strict";
import { FrameDecoder } from "../src/protocol/decoder.ts";
import { encodeFrame, type Frame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import type { ConnectRequest, Operator, Session } from "../src/server/operator.ts";
import type { ConnInfo } from "../src/server/wire.ts";
import type { CometServer } from "../src/serve.ts";
import { Comet } from "../src/server/comet.ts";
import { listenTcp, TcpWire } from "../src/transport/tcp.ts";
import { api, startServer, TestClient, text, until, utf8 } from "./_helpers.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function port(server: CometServer): number {
  return server.addrs.tcp!.port;
}

function authBody(auth: Record<string, unknown>): Uint8Array {
  return utf8.encode(JSON.stringify(auth));
}

/** The int32 online count in a heartbeat reply's body. */
function online(frame: Frame): number {
  assert.equal(frame.op, Op.HeartbeatReply);
  assert.equal(frame.body.length, 4);
  return new DataView(frame.body.buffer, frame.body.byteOffset, 4).getInt32(0);
}

/** Sends a heartbeat and returns the room's online count from the reply. */
async function heartbeat(c: TestClient): Promise<number> {
  const seq = c.sendFrame(Op.Heartbeat);
  const reply = await c.next();
  assert.equal(reply.op, Op.HeartbeatReply, `expected op 3, got op ${reply.op}`);
  assert.equal(reply.seq, seq);
  return online(reply);
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

async function expectPush(c: TestClient, op: number, body: string): Promise<void> {
  const f = await c.next();
  assert.equal(f.op, op);
  assert.equal(f.seq, 0);
  assert.equal(text(f.body), body);
}

/** Expects op 6 (DisconnectReply) and then the server closing the socket. */
async function expectDisconnect(c: TestClient, reason?: RegExp): Promise<Frame> {
  const f = await c.nextOp(Op.DisconnectReply);
  if (reason) assert.match(text(f.body), reason);
  assert.ok(await c.closedByServer(), "the server should close the connection");
  return f;
}

// ---------------------------------------------------------------- auth

Deno.test("auth reply echoes the client's seq and ver", async () => {
  await using server = startServer();
  await using c = await TestClient.connect(port(server));
  const auth = { mid: 7, key: "k1", room_id: "live://1", platform: "web", accepts: [1000] };
  await c.write(encodeFrame(Op.Auth, 4242, authBody(auth), 3));
  const reply = await c.next();
  assert.equal(reply.op, Op.AuthReply);
  assert.equal(reply.seq, 4242);
  assert.equal(reply.ver, 3);
  assert.equal(reply.body.length, 0);
  const ch = server.comet.channel("k1");
  assert.ok(ch);
  assert.equal(ch.mid, 7);
  assert.equal(ch.room, "live://1");
  assert.equal(ch.platform, "web");
  assert.deepEqual(ch.watched(), [1000]);
  assert.equal(server.comet.connections, 1);
  assert.equal(server.comet.stats.authOk, 1);
});

Deno.test("auth with no key gets a generated key", async () => {
  await using server = startServer();
  await using _c = await TestClient.auth(port(server), { mid: 1 });
  const keys = server.comet.buckets.flatMap((b) => [...b.channels.keys()]);
  assert.equal(keys.length, 1);
  assert.match(keys[0]!, /^[0-9a-f-]{36}$/);
});

Deno.test("frames before auth that are not op 7 are skipped", async () => {
  await using server = startServer();
  await using c = await TestClient.connect(port(server));
  c.sendFrame(Op.Heartbeat);
  c.sendFrame(Op.SendMsg, "early");
  c.sendFrame(Op.Sub, "1000");
  assert.ok(await c.silent(150), "no reply to frames sent before auth");
  assert.equal(server.comet.handshaking, 1);
  assert.equal(server.comet.connections, 0);
  const seq = c.sendFrame(Op.Auth, authBody({ key: "late" }));
  const reply = await c.next();
  assert.equal(reply.op, Op.AuthReply);
  assert.equal(reply.seq, seq);
  // The early Sub was skipped, not applied.
  assert.deepEqual(server.comet.channel("late")?.watched(), []);
  assert.equal(await heartbeat(c), 0);
});

Deno.test("auth with invalid JSON gets op 6 with a reason and is closed", async () => {
  await using server = startServer();
  await using c = await TestClient.connect(port(server));
  c.sendFrame(Op.Auth, "{not json");
  await expectDisconnect(c, /auth failed: .*JSON/);
  assert.equal(server.comet.stats.authFailed, 1);
  assert.equal(server.comet.connections, 0);
  assert.ok(await until(() => server.comet.handshaking === 0 && server.comet.timers === 0));
});

Deno.test("auth with a bad field gets op 6 with a reason and is closed", async () => {
  await using server = startServer();
  const cases: [unknown, RegExp][] = [
    [{ mid: "x" }, /mid/],
    [{ mid: -1 }, /mid/],
    [{ mid: 1.5 }, /mid/],
    [{ key: 12 }, /key/],
    [{ room_id: ["live://1"] }, /room_id/],
    [{ accepts: "1000" }, /accepts/],
    [{ accepts: [1.5] }, /accepts/],
    [{ accepts: [2 ** 31] }, /accepts/],
    [{ key: "k".repeat(257) }, /key/],
    [[1, 2], /object/],
    ["just a string", /object/],
  ];
  for (const [auth, reason] of cases) {
    await using c = await TestClient.connect(port(server));
    c.sendFrame(Op.Auth, JSON.stringify(auth));
    await expectDisconnect(c, reason);
  }
  assert.equal(server.comet.stats.authFailed, cases.length);
  assert.equal(server.comet.stats.authOk, 0);
  assert.equal(server.comet.connections, 0);
});

Deno.test("an operator that throws refuses the connection", async () => {
  let calls = 0;
  const operator: Operator = {
    connect({ body }) {
      calls++;
      const { token } = JSON.parse(text(body));
      if (token === "async") return Promise.reject(new Error("Token expired"));
      if (token !== "secret") throw new Error("Bad token");
      return { key: "ok" };
    },
  };
  await using server = startServer({ operator });
  await using bad = await TestClient.connect(port(server));
  bad.sendFrame(Op.Auth, JSON.stringify({ token: "nope" }));
  await expectDisconnect(bad, /Bad token/);
  await using late = await TestClient.connect(port(server));
  late.sendFrame(Op.Auth, JSON.stringify({ token: "async" }));
  await expectDisconnect(late, /Token expired/);
  await using _good = await TestClient.auth(port(server), { token: "secret" });
  assert.equal(calls, 3);
  assert.equal(server.comet.stats.authFailed, 2);
  assert.equal(server.comet.connections, 1);
  assert.ok(server.comet.channel("ok"));
});

Deno.test("a custom operator's connect sees transport tcp and the remote address", async () => {
  const seen: ConnectRequest[] = [];
  const disconnected: string[] = [];
  const operator: Operator = {
    connect(request) {
      seen.push(request);
      return { key: "custom", mid: 3 };
    },
    disconnect(channel) {
      disconnected.push(channel.key);
    },
  };
  await using server = startServer({ operator });
  const c = await TestClient.auth(port(server), { hello: "world" });
  assert.equal(seen.length, 1);
  const info: ConnInfo = seen[0]!.info;
  assert.equal(info.transport, "tcp");
  const local = c.conn.localAddr as Deno.NetAddr;
  assert.equal(info.remoteAddr.hostname, "127.0.0.1");
  assert.equal(info.remoteAddr.port, local.port);
  assert.deepEqual(JSON.parse(text(seen[0]!.body)), { hello: "world" });
  await c.close();
  assert.ok(await until(() => disconnected.length === 1));
  assert.deepEqual(disconnected, ["custom"]);
});

// ---------------------------------------------------------------- heartbeat

Deno.test("heartbeat reply carries the room's online count and echoes the seq", async () => {
  await using server = startServer();
  const p = port(server);
  await using loner = await TestClient.auth(p, { key: "loner" });
  const seq = loner.sendFrame(Op.Heartbeat, new Uint8Array(0), 99);
  const reply = await loner.next();
  assert.equal(reply.op, Op.HeartbeatReply);
  assert.equal(reply.seq, 99);
  assert.equal(reply.seq, seq);
  assert.equal(online(reply), 0, "no room: 0");

  await using a = await TestClient.auth(p, { key: "a", room_id: "live://1" });
  assert.equal(await heartbeat(a), 1);
  const b = await TestClient.auth(p, { key: "b", room_id: "live://1" });
  assert.equal(await heartbeat(a), 2);
  assert.equal(await heartbeat(b), 2);
  await using _other = await TestClient.auth(p, { key: "o", room_id: "live://2" });
  assert.equal(await heartbeat(a), 2);
  await b.close();
  assert.ok(await until(() => server.comet.roomOnline("live://1") === 1));
  assert.equal(await heartbeat(a), 1);
  assert.equal(await heartbeat(loner), 0);
});

Deno.test("heartbeat reply echoes the client's ver", async () => {
  await using server = startServer();
  await using c = await TestClient.auth(port(server), { key: "v" });
  await c.write(encodeFrame(Op.Heartbeat, 5, new Uint8Array(0), 2));
  const reply = await c.next();
  assert.equal(reply.op, Op.HeartbeatReply);
  assert.equal(reply.seq, 5);
  assert.equal(reply.ver, 2);
});

// ---------------------------------------------------------------- sub / unsub

Deno.test("sub replies op 15 and unsub op 17; key pushes follow the watched set", async () => {
  await using server = startServer();
  const comet = server.comet;
  await using c = await TestClient.auth(port(server), { key: "s" });
  assert.equal(comet.pushKeys(["s"], 1001, utf8.encode("unwatched")), 0);
  await assertNothingQueued(c);

  const subSeq = c.sendFrame(Op.Sub, "1001,1002");
  const sub = await c.next();
  assert.equal(sub.op, Op.SubReply);
  assert.equal(sub.seq, subSeq);
  assert.equal(text(sub.body), "1001,1002");
  assert.deepEqual(comet.channel("s")!.watched().sort(), [1001, 1002]);

  assert.equal(comet.pushKeys(["s"], 1001, utf8.encode("one")), 1);
  assert.equal(comet.pushKeys(["s"], 1003, utf8.encode("three")), 0);
  assert.equal(comet.pushKeys(["s"], 1002, utf8.encode("two")), 1);
  await expectPush(c, 1001, "one");
  await expectPush(c, 1002, "two");

  const unsubSeq = c.sendFrame(Op.Unsub, "1001");
  const unsub = await c.next();
  assert.equal(unsub.op, Op.UnsubReply);
  assert.equal(unsub.seq, unsubSeq);
  assert.equal(text(unsub.body), "1001");
  assert.equal(comet.pushKeys(["s"], 1001, utf8.encode("gone")), 0);
  assert.equal(comet.pushKeys(["s"], 1002, utf8.encode("still")), 1);
  await expectPush(c, 1002, "still");
  await assertNothingQueued(c);
});

Deno.test("a malformed op list closes that connection only", async () => {
  await using server = startServer();
  const p = port(server);
  await using good = await TestClient.auth(p, { key: "good", accepts: [1000] });
  for (const list of ["10a,x", "1000,,1001", "1.5", "99999999999", "0x10", "1e3", "1000,"]) {
    await using bad = await TestClient.auth(p, { key: "bad", accepts: [1000] });
    bad.sendFrame(Op.Sub, list);
    await expectDisconnect(bad, /protocol error/);
  }
  await using bad = await TestClient.auth(p, { key: "bad", accepts: [1000] });
  bad.sendFrame(Op.Unsub, "nope");
  await expectDisconnect(bad, /protocol error/);
  assert.equal(server.comet.stats.protocolErrors, 8);
  assert.ok(await until(() => server.comet.connections === 1));
  assert.equal(server.comet.pushKeys(["good", "bad"], 1000, utf8.encode("hi")), 1);
  await expectPush(good, 1000, "hi");
  assert.equal(await heartbeat(good), 0);
});

// ---------------------------------------------------------------- change room

Deno.test("change room moves room pushes and online counts", async () => {
  await using server = startServer();
  const comet = server.comet;
  const p = port(server);
  await using c = await TestClient.auth(p, { key: "mover", room_id: "live://1" });
  await using stay = await TestClient.auth(p, { key: "stay", room_id: "live://1" });
  assert.equal(comet.roomOnline("live://1"), 2);

  const seq = c.sendFrame(Op.ChangeRoom, "live://2");
  const reply = await c.next();
  assert.equal(reply.op, Op.ChangeRoomReply);
  assert.equal(reply.seq, seq);
  assert.equal(text(reply.body), "live://2");
  assert.equal(comet.channel("mover")!.room, "live://2");
  assert.equal(comet.roomOnline("live://1"), 1);
  assert.equal(comet.roomOnline("live://2"), 1);

  assert.equal(comet.pushRoom("live://1", 1000, utf8.encode("old")), 1);
  assert.equal(comet.pushRoom("live://2", 1000, utf8.encode("new")), 1);
  await expectPush(c, 1000, "new");
  await expectPush(stay, 1000, "old");
  assert.equal(await heartbeat(c), 1);
  assert.equal(await heartbeat(stay), 1);

  // Back to the first room, then out of every room.
  c.sendFrame(Op.ChangeRoom, "live://1");
  assert.equal((await c.next()).op, Op.ChangeRoomReply);
  assert.equal(await heartbeat(c), 2);
  assert.equal(comet.roomOnline("live://2"), 0);
  assert.equal(comet.rooms.has("live://2"), false);

  const leaveSeq = c.sendFrame(Op.ChangeRoom, "");
  const left = await c.next();
  assert.equal(left.op, Op.ChangeRoomReply);
  assert.equal(left.seq, leaveSeq);
  assert.equal(left.body.length, 0);
  assert.equal(comet.channel("mover")!.room, "");
  assert.equal(comet.roomOnline("live://1"), 1);
  assert.equal(comet.pushRoom("live://1", 1000, utf8.encode("after")), 1);
  await expectPush(stay, 1000, "after");
  await assertNothingQueued(c);
  assert.equal(await heartbeat(c), 0);
  assert.deepEqual([...comet.rooms], [["live://1", 1]]);
});

Deno.test("a room id over 256 characters closes the connection", async () => {
  await using server = startServer();
  await using c = await TestClient.auth(port(server), { key: "long", room_id: "live://1" });
  c.sendFrame(Op.ChangeRoom, "live://" + "x".repeat(300));
  await expectDisconnect(c, /protocol error/);
  assert.ok(await until(() => server.comet.rooms.size === 0 && server.comet.connections === 0));
});

// ---------------------------------------------------------------- duplicate key

Deno.test("a second connection with the same key replaces the first", async () => {
  await using server = startServer();
  const comet = server.comet;
  const p = port(server);
  const auth = { mid: 5, key: "dup", room_id: "live://9", accepts: [1000] };
  await using first = await TestClient.auth(p, auth);
  await using second = await TestClient.auth(p, auth);
  await expectDisconnect(first, /replaced/);
  assert.ok(await until(() => comet.connections === 1));
  assert.deepEqual(comet.onlineTotal(), { ipCount: 1, connCount: 1 });
  assert.equal(comet.roomOnline("live://9"), 1);
  assert.equal(comet.pushKeys(["dup"], 1000, utf8.encode("k")), 1);
  assert.equal(comet.pushMids([5], 1000, utf8.encode("m")), 1);
  assert.equal(comet.pushRoom("live://9", 1000, utf8.encode("r")), 1);
  await expectPush(second, 1000, "k");
  await expectPush(second, 1000, "m");
  await expectPush(second, 1000, "r");
  assert.equal(await heartbeat(second), 1);
  const { body } = await api(server, "/goim/online/total");
  assert.deepEqual(body.data, { ip_count: 1, conn_count: 1 });
});

// ---------------------------------------------------------------- upstream op 4

Deno.test("the default operator echoes op 4 as op 5 with the same seq", async () => {
  await using server = startServer();
  await using c = await TestClient.auth(port(server), { key: "echo" });
  const seq = c.sendFrame(Op.SendMsg, "ping ✓");
  const reply = await c.next();
  assert.equal(reply.op, Op.SendMsgReply);
  assert.equal(reply.seq, seq);
  assert.equal(text(reply.body), "ping ✓");
  const empty = c.sendFrame(Op.SendMsg);
  const r2 = await c.next();
  assert.equal(r2.op, Op.SendMsgReply);
  assert.equal(r2.seq, empty);
  assert.equal(r2.body.length, 0);
});

Deno.test("an operator's session comes as a value, a promise or another thenable", async () => {
  const connects: [string, Operator["connect"]][] = [
    ["sync", () => ({ key: "sync" })],
    ["promise", async () => {
      await sleep(1);
      return { key: "promise" };
    }],
    // A thenable that is not a Promise, as some libraries return.
    ["thenable", () =>
      ({
        then: (resolve: (s: Session) => void) => setTimeout(() => resolve({ key: "thenable" }), 1),
      }) as unknown as Promise<Session>],
  ];
  for (const [key, connect] of connects) {
    await using server = startServer({ operator: { connect } });
    await using c = await TestClient.auth(port(server), {});
    assert.ok(server.comet.channel(key), `the ${key} session's key is registered`);
    c.sendFrame(Op.Heartbeat, "");
    assert.equal((await c.next()).op, Op.HeartbeatReply);
  }
});

Deno.test("a custom operator's receive reply is used; undefined sends none", async () => {
  const operator: Operator = {
    connect: () => ({ key: "up" }),
    async receive(channel, frame) {
      await sleep(1);
      const msg = text(frame.body);
      if (msg === "quiet") return undefined;
      if (msg === "bytes") return new Uint8Array([1, 2, 3]);
      return `${channel.key}:${msg.toUpperCase()}`;
    },
  };
  await using server = startServer({ operator });
  await using c = await TestClient.auth(port(server), {});
  const seq = c.sendFrame(Op.SendMsg, "hello");
  const reply = await c.next();
  assert.equal(reply.op, Op.SendMsgReply);
  assert.equal(reply.seq, seq);
  assert.equal(text(reply.body), "up:HELLO");
  c.sendFrame(Op.SendMsg, "quiet");
  await assertNothingQueued(c);
  const bytesSeq = c.sendFrame(Op.SendMsg, "bytes");
  const bytes = await c.next();
  assert.equal(bytes.seq, bytesSeq);
  assert.deepEqual([...bytes.body], [1, 2, 3]);
});

Deno.test("an operator without receive echoes op 4", async () => {
  await using server = startServer({ operator: { connect: () => ({ key: "noreceive" }) } });
  await using c = await TestClient.auth(port(server), {});
  const seq = c.sendFrame(Op.SendMsg, "as is");
  const reply = await c.next();
  assert.equal(reply.op, Op.SendMsgReply);
  assert.equal(reply.seq, seq);
  assert.equal(text(reply.body), "as is");
});

Deno.test("a receive that throws sends no reply and keeps the connection", async () => {
  const operator: Operator = {
    connect: () => ({ key: "thrower", accepts: [1000] }),
    receive(_channel, frame) {
      if (text(frame.body) === "async") return Promise.reject(new Error("async boom"));
      throw new Error("boom");
    },
  };
  await using server = startServer({ operator });
  await using c = await TestClient.auth(port(server), {});
  c.sendFrame(Op.SendMsg, "sync");
  c.sendFrame(Op.SendMsg, "async");
  await assertNothingQueued(c);
  assert.equal(server.comet.connections, 1);
  assert.equal(server.comet.pushKeys(["thrower"], 1000, utf8.encode("alive")), 1);
  await expectPush(c, 1000, "alive");
});

// ---------------------------------------------------------------- framing

Deno.test("auth and heartbeat sent one byte at a time work", async () => {
  await using server = startServer();
  await using c = await TestClient.connect(port(server));
  c.conn.setNoDelay(true);
  const auth = encodeFrame(Op.Auth, 11, authBody({ key: "bytewise", room_id: "live://b" }));
  const hb = encodeFrame(Op.Heartbeat, 12);
  const all = new Uint8Array(auth.length + hb.length);
  all.set(auth);
  all.set(hb, auth.length);
  for (let i = 0; i < all.length; i++) {
    await c.write(all.subarray(i, i + 1));
    if (i % 4 === 0) await sleep(1); // let the server see separate reads
  }
  const authReply = await c.next();
  assert.equal(authReply.op, Op.AuthReply);
  assert.equal(authReply.seq, 11);
  const hbReply = await c.next();
  assert.equal(hbReply.seq, 12);
  assert.equal(online(hbReply), 1);
});

Deno.test("many frames in one write get their replies in order", async () => {
  await using server = startServer();
  await using c = await TestClient.auth(port(server), { key: "batch", room_id: "live://x" });
  const n = 50;
  const frames = Array.from({ length: n }, (_, i) => encodeFrame(Op.Heartbeat, 1000 + i));
  const buf = new Uint8Array(frames.reduce((s, f) => s + f.length, 0));
  let at = 0;
  for (const f of frames) {
    buf.set(f, at);
    at += f.length;
  }
  await c.write(buf);
  for (let i = 0; i < n; i++) {
    const reply = await c.next();
    assert.equal(reply.op, Op.HeartbeatReply);
    assert.equal(reply.seq, 1000 + i);
    assert.equal(online(reply), 1);
  }
  // A mixed batch, with the auth frame of a second client and more after it.
  await using d = await TestClient.connect(port(server));
  const mixed = [
    encodeFrame(Op.Auth, 1, authBody({ key: "mixed", room_id: "live://x" })),
    encodeFrame(Op.Heartbeat, 2),
    encodeFrame(Op.SendMsg, 3, utf8.encode("m")),
    encodeFrame(Op.Sub, 4, utf8.encode("1000")),
  ];
  const out = new Uint8Array(mixed.reduce((s, f) => s + f.length, 0));
  at = 0;
  for (const f of mixed) {
    out.set(f, at);
    at += f.length;
  }
  await d.write(out);
  const ops = [];
  for (let i = 0; i < mixed.length; i++) {
    const f = await d.next();
    ops.push([f.op, f.seq]);
  }
  assert.deepEqual(ops, [[Op.AuthReply, 1], [Op.HeartbeatReply, 2], [Op.SendMsgReply, 3], [
    Op.SubReply,
    4,
  ]]);
});

Deno.test("a body of exactly 4096 bytes is accepted", async () => {
  await using server = startServer();
  await using c = await TestClient.auth(port(server), { key: "max" });
  const body = new Uint8Array(4096).fill(0x61);
  const seq = c.sendFrame(Op.SendMsg, body);
  const reply = await c.next();
  assert.equal(reply.seq, seq);
  assert.equal(reply.body.length, 4096);
});

// ---------------------------------------------------------------- bad input

Deno.test("bad input closes only the connection that sent it; the server stays up", async () => {
  await using server = startServer();
  const comet = server.comet;
  const p = port(server);
  await using good = await TestClient.auth(p, { key: "good", accepts: [1000] });

  const header = (packLen: number, headerLen: number) => {
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setInt32(0, packLen);
    v.setInt16(4, headerLen);
    v.setInt16(6, 1);
    v.setInt32(8, Op.SendMsg);
    v.setInt32(12, 1);
    return b;
  };
  const garbage = utf8.encode("GET /sub HTTP/1.1\r\nHost: example\r\n\r\n");
  const random = new Uint8Array(300);
  for (let i = 0; i < random.length; i++) random[i] = (i * 7919 + 13) & 0xff;
  const cases: [string, Uint8Array][] = [
    ["oversized packLen", header(16 + 4097, 16)],
    ["huge packLen", header(0x7fffffff, 16)],
    ["packLen below the header", header(8, 16)],
    ["wrong headerLen", header(20, 20)],
    ["http garbage", garbage],
    ["random garbage", random],
  ];
  let errors = 0;
  for (const [name, bytes] of cases) {
    for (const authed of [false, true]) {
      await using bad = authed
        ? await TestClient.auth(p, { key: `bad`, accepts: [1000] })
        : await TestClient.connect(p);
      await bad.write(bytes);
      const f = await bad.nextOp(Op.DisconnectReply).catch(() => undefined);
      if (f) assert.match(text(f.body), /protocol error/, name);
      assert.ok(await bad.closedByServer(), `${name} (authed: ${authed}) closes the connection`);
      errors++;
      assert.ok(await until(() => comet.stats.protocolErrors === errors), name);
      assert.equal(comet.pushKeys(["good", "bad"], 1000, utf8.encode(name)), 1, name);
      await expectPush(good, 1000, name);
    }
  }
  assert.ok(await until(() => comet.connections === 1 && comet.handshaking === 0));
  await using later = await TestClient.auth(p, { key: "later" });
  assert.equal(await heartbeat(later), 0);
  assert.equal(await heartbeat(good), 0);
});

Deno.test("a protocol error sends op 6 with the reason before closing", async () => {
  await using server = startServer();
  await using c = await TestClient.auth(port(server), { key: "oversize" });
  const b = new Uint8Array(16);
  new DataView(b.buffer).setInt32(0, 16 + 5000);
  new DataView(b.buffer).setInt16(4, 16);
  await c.write(b);
  await expectDisconnect(c, /protocol error: Body exceeds the limit of 4096 bytes/);
});

// ---------------------------------------------------------------- timeouts

Deno.test("handshake timeout closes a connection that never authenticates", async () => {
  await using server = startServer({ handshakeTimeout: 100 });
  const comet = server.comet;
  await using idle = await TestClient.connect(port(server));
  await using chatty = await TestClient.connect(port(server));
  chatty.sendFrame(Op.Heartbeat); // frames other than auth do not count
  assert.ok(await until(() => comet.handshaking === 2));
  assert.ok(await idle.closedByServer(2000));
  assert.ok(await chatty.closedByServer(2000));
  assert.equal(comet.stats.handshakeTimeouts, 2);
  assert.ok(await until(() => comet.handshaking === 0 && comet.timers === 0));
  // An authenticated client is not subject to the handshake timeout.
  await using ok = await TestClient.auth(port(server), { key: "ok" });
  await sleep(200);
  assert.equal(await heartbeat(ok), 0);
  assert.equal(comet.stats.handshakeTimeouts, 2);
});

Deno.test("heartbeat timeout closes a silent connection; a heartbeating one stays", async () => {
  await using server = startServer({ heartbeatTimeout: 200 });
  const comet = server.comet;
  const p = port(server);
  await using silent = await TestClient.auth(p, { key: "silent" });
  await using beating = await TestClient.auth(p, { key: "beating" });
  const start = Date.now();
  let beats = 0;
  while (Date.now() - start < 450) {
    await heartbeat(beating);
    beats++;
    await sleep(50);
  }
  assert.ok(beats >= 4);
  assert.ok(await silent.closedByServer(2000), "the silent connection is closed");
  assert.equal(comet.stats.heartbeatTimeouts, 1);
  assert.equal(await heartbeat(beating), 0);
  assert.ok(comet.channel("beating"));
  assert.equal(comet.channel("silent"), undefined);
  assert.equal(comet.connections, 1);
  assert.equal(comet.timers, 1);
});

Deno.test("a session heartbeat from the operator overrides the server's", async () => {
  const operator: Operator = { connect: ({ body }) => JSON.parse(text(body)) };
  await using server = startServer({ operator, heartbeatTimeout: 60_000 });
  await using short = await TestClient.auth(port(server), { key: "short", heartbeat: 100 });
  await using long = await TestClient.auth(port(server), { key: "long" });
  assert.ok(await short.closedByServer(2000));
  assert.equal(server.comet.stats.heartbeatTimeouts, 1);
  assert.equal(await heartbeat(long), 0);
});

// ---------------------------------------------------------------- shutdown

Deno.test("graceful shutdown sends op 6 to every client, closes them and resolves", async () => {
  const disconnected: string[] = [];
  const operator: Operator = {
    connect: ({ body }) => JSON.parse(text(body)),
    disconnect: (ch) => void disconnected.push(ch.key),
  };
  const server = startServer({ operator, heartbeatTimeout: 60_000 });
  const comet = server.comet;
  const p = port(server);
  try {
    await using a = await TestClient.auth(p, { key: "a", room: "live://1", accepts: [1000] });
    await using b = await TestClient.auth(p, { key: "b", room: "live://1" });
    await using c = await TestClient.auth(p, { key: "c" });
    await using pending = await TestClient.connect(p);
    assert.ok(await until(() => comet.handshaking === 1));
    comet.pushKeys(["a"], 1000, utf8.encode("last words"));
    await server.shutdown();
    assert.equal(comet.closing, true);
    assert.equal(comet.timers, 0);
    assert.equal(comet.connections, 0);
    assert.equal(comet.handshaking, 0);
    assert.equal(comet.rooms.size, 0);
    // Whatever was queued is flushed before the goodbye.
    await expectPush(a, 1000, "last words");
    for (const client of [a, b, c]) await expectDisconnect(client, /shutting down/);
    assert.ok(await pending.closedByServer());
    assert.deepEqual(disconnected.sort(), ["a", "b", "c"]);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: p }));
  } finally {
    await server.shutdown();
  }
  await server.finished;
});

Deno.test("shutdown cuts off a client that does not read once the timeout passes", async () => {
  const server = startServer({ queueSize: 1024, shutdownTimeout: 200, closeGrace: 10_000 });
  const comet = server.comet;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: port(server) });
  try {
    await conn.write(encodeFrame(Op.Auth, 1, authBody({ key: "stuck", accepts: [1000] })));
    assert.ok(await until(() => comet.connections === 1));
    const big = new Uint8Array(64 * 1024);
    // Fill the socket buffers so that the goodbye cannot be flushed.
    for (let i = 0; i < 200 && comet.channel("stuck")!.queued < 8; i++) {
      comet.pushKeys(["stuck"], 1000, big);
      await sleep(0);
    }
    await server.shutdown();
    assert.equal(comet.timers, 0);
    assert.equal(comet.connections, 0);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("comet.close cuts off a client that does not read and resolves once idle", async () => {
  const disconnected: string[] = [];
  const comet = new Comet({
    closeGrace: 10_000,
    operator: {
      connect: ({ body }) => JSON.parse(text(body)),
      disconnect: (ch) => void disconnected.push(ch.key),
    },
  });
  const acceptor = listenTcp(comet, { hostname: "127.0.0.1", port: 0 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: acceptor.addr.port });
  try {
    const auth = { key: "stuck", room: "live://s", accepts: [1000] };
    await conn.write(encodeFrame(Op.Auth, 1, authBody(auth)));
    assert.ok(await until(() => comet.connections === 1));
    const big = new Uint8Array(64 * 1024);
    for (let i = 0; i < 300 && comet.channel("stuck")!.queued < 8; i++) {
      comet.pushKeys(["stuck"], 1000, big);
      await sleep(0);
    }
    assert.ok(comet.channel("stuck")!.queued >= 8, "the socket should be backed up");
    await acceptor[Symbol.asyncDispose]();
    await comet.close(200);
    assert.equal(comet.connections, 0);
    assert.equal(comet.timers, 0);
    assert.equal(comet.rooms.size, 0);
    assert.deepEqual(disconnected, ["stuck"]);
  } finally {
    conn.close();
    acceptor.close();
    await comet.close();
  }
});

Deno.test("a closed TCP wire hands out no frame it had buffered", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await listener.accept();
  const wire = new TcpWire(server);
  try {
    const two = new Uint8Array(32);
    two.set(encodeFrame(Op.Heartbeat, 1));
    two.set(encodeFrame(Op.Heartbeat, 2), 16);
    await client.write(two);
    const first = await wire.read();
    assert.equal(first?.seq, 1);
    wire.close();
    assert.equal(await wire.read(), null);
  } finally {
    wire.close();
    client.close();
  }
});

// ---------------------------------------------------------------- online counts

Deno.test("online counts follow joins and leaves; nothing is left once everyone leaves", async () => {
  await using server = startServer();
  const comet = server.comet;
  const p = port(server);
  const specs: [string, string][] = [
    ["l1a", "live://1"],
    ["l1b", "live://1"],
    ["l1c", "live://1"],
    ["l2a", "live://2"],
    ["c3a", "chat://3"],
    ["c3b", "chat://3"],
    ["none", ""],
  ];
  const clients = new Map<string, TestClient>();
  try {
    for (const [key, room] of specs) {
      clients.set(key, await TestClient.auth(p, { key, mid: 1, room_id: room }));
    }
    assert.equal(comet.roomOnline("live://1"), 3);
    assert.equal(comet.roomOnline("live://2"), 1);
    assert.equal(comet.roomOnline("chat://3"), 2);
    assert.equal(comet.roomOnline("live://404"), 0);
    assert.deepEqual(comet.onlineTotal(), { ipCount: 1, connCount: 7 });
    assert.deepEqual(comet.topRooms("live://", 10), [
      { room: "live://1", count: 3 },
      { room: "live://2", count: 1 },
    ]);
    assert.deepEqual(comet.topRooms("", 2), [
      { room: "live://1", count: 3 },
      { room: "chat://3", count: 2 },
    ]);
    assert.deepEqual(comet.topRooms("live://", 0), []);

    const top = await api(server, "/goim/online/top?type=live&limit=10");
    assert.deepEqual(top.body.data, [{ room_id: "1", count: 3 }, { room_id: "2", count: 1 }]);
    const rooms = await api(server, "/goim/online/room?type=live&rooms=1&rooms=2&rooms=3");
    assert.deepEqual(rooms.body.data, { "1": 3, "2": 1, "3": 0 });
    const total = await api(server, "/goim/online/total");
    assert.deepEqual(total.body.data, { ip_count: 1, conn_count: 7 });

    // Leave by closing, and by changing room.
    await clients.get("l1a")!.close();
    const mover = clients.get("c3a")!;
    mover.sendFrame(Op.ChangeRoom, "live://2");
    assert.equal((await mover.next()).op, Op.ChangeRoomReply);
    assert.ok(await until(() => comet.connections === 6));
    assert.equal(comet.roomOnline("live://1"), 2);
    assert.equal(comet.roomOnline("live://2"), 2);
    assert.equal(comet.roomOnline("chat://3"), 1);
    assert.deepEqual(comet.topRooms("live://", 10), [
      { room: "live://1", count: 2 },
      { room: "live://2", count: 2 },
    ]);
  } finally {
    for (const c of clients.values()) await c.close();
  }
  assert.ok(await until(() => comet.connections === 0 && comet.timers === 0));
  assert.equal(comet.handshaking, 0);
  assert.equal(comet.rooms.size, 0);
  assert.deepEqual(comet.topRooms("", 10), []);
  assert.deepEqual(comet.onlineTotal(), { ipCount: 0, connCount: 0 });
  for (const bucket of comet.buckets) {
    assert.equal(bucket.size, 0);
    assert.equal(bucket.rooms.size, 0);
  }
  assert.equal(comet.pushMids([1], 1000, utf8.encode("nobody")), 0);
  assert.equal(comet.pushAll(1000, utf8.encode("nobody")), 0);
});

Deno.test("a slow operator receive holds up neither heartbeats nor other requests", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const operator: Operator = {
    connect: () => ({ key: "slow-op" }),
    async receive(_ch, frame) {
      if (text(frame.body) === "slow") await gate;
      return `re:${text(frame.body)}`;
    },
  };
  await using server = startServer({ operator });
  await using c = await TestClient.auth(port(server), {});
  const slowSeq = c.sendFrame(Op.SendMsg, "slow");
  const hbSeq = c.sendFrame(Op.Heartbeat);
  const fastSeq = c.sendFrame(Op.SendMsg, "fast");
  const first = await c.next();
  const second = await c.next();
  assert.deepEqual(
    [[first.op, first.seq], [second.op, second.seq]].sort(),
    [[Op.HeartbeatReply, hbSeq], [Op.SendMsgReply, fastSeq]].sort(),
  );
  release();
  const last = await c.next();
  assert.equal(last.op, Op.SendMsgReply);
  assert.equal(last.seq, slowSeq);
  assert.equal(text(last.body), "re:slow");
});

Deno.test("a client that sends requests faster than it reads is throttled, not closed", async () => {
  await using server = startServer({ queueSize: 8 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: port(server) });
  try {
    // 6,000 echoes of 4 KB: far more than loopback socket buffers hold, so the server's
    // queue fills while this client is not reading.
    const n = 6000;
    const body = new Uint8Array(4000).fill(7);
    const frames = [encodeFrame(Op.Auth, 1, authBody({ key: "flood" }))];
    for (let i = 0; i < n; i++) frames.push(encodeFrame(Op.SendMsg, i + 2, body));
    const writing = (async () => {
      for (const f of frames) {
        for (let at = 0; at < f.length;) at += await conn.write(f.subarray(at));
      }
    })();
    await sleep(300);
    assert.equal(server.comet.stats.slowClosed, 0);
    const decoder = new FrameDecoder({ maxBody: 4096 });
    const buf = new Uint8Array(64 * 1024);
    const seqs: number[] = [];
    while (seqs.length < n + 1) {
      const read = await conn.read(buf);
      assert.notEqual(read, null, `closed after ${seqs.length} replies`);
      for (const f of decoder.decode(buf.subarray(0, read!))) seqs.push(f.seq);
    }
    await writing;
    assert.deepEqual(seqs, Array.from({ length: n + 1 }, (_, i) => i + 1));
    assert.equal(server.comet.stats.slowClosed, 0);
  } finally {
    conn.close();
  }
});

Deno.test("a session's rooms refuse a room it was not given, and a start room outside them", async () => {
  const operator: Operator = {
    connect: ({ body }) => {
      const { key, room } = JSON.parse(text(body));
      return { key, room, rooms: ["live://a", "live://b"] };
    },
  };
  await using server = startServer({ operator });
  await using ok = await TestClient.auth(port(server), { key: "in", room: "live://a" });
  ok.sendFrame(Op.ChangeRoom, "live://b");
  assert.equal((await ok.next()).op, Op.ChangeRoomReply);
  ok.sendFrame(Op.ChangeRoom, "live://c");
  assert.equal(text((await ok.nextOp(Op.DisconnectReply)).body), "room refused: live://c");

  await using bad = await TestClient.connect(port(server));
  bad.sendFrame(Op.Auth, authBody({ key: "out", room: "live://z" }));
  const f = await bad.nextOp(Op.DisconnectReply);
  assert.match(text(f.body), /auth failed: Session room is not among its allowed rooms/);
});

Deno.test("upstream messages beyond what the operator may hold at once wait their turn", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started = 0;
  const operator: Operator = {
    connect: () => ({ key: "many-up" }),
    async receive(_ch, frame) {
      started++;
      await gate;
      return `re:${text(frame.body)}`;
    },
  };
  await using server = startServer({ operator });
  await using c = await TestClient.auth(port(server), {});
  const seqs: number[] = [];
  for (let i = 0; i < 40; i++) seqs.push(c.sendFrame(Op.SendMsg, `m${i}`));
  const hbSeq = c.sendFrame(Op.Heartbeat);
  // 32 are with the operator; the 33rd waits for a slot and holds up reading, heartbeat included.
  assert.ok(await until(() => started === 32, 2_000));
  await assert.rejects(c.next(200), /Timed out/, "nothing is answered while reading waits");
  assert.equal(started, 32);
  release();
  const replies = new Map<number, string>();
  let heartbeatReplied = false;
  while (replies.size < 40 || !heartbeatReplied) {
    const f = await c.next();
    if (f.op === Op.HeartbeatReply && f.seq === hbSeq) heartbeatReplied = true;
    else if (f.op === Op.SendMsgReply) replies.set(f.seq, text(f.body));
  }
  assert.equal(started, 40);
  assert.deepEqual([...replies.keys()].sort((a, b) => a - b), seqs);
  assert.equal(replies.get(seqs[39]!), "re:m39");
});

Deno.test("a wire whose read throws ends its own session and no other", async () => {
  await using comet = new Comet();
  const info: ConnInfo = { transport: "broken", remoteAddr: { hostname: "127.0.0.1", port: 1 } };
  let reads = 0;
  let closed = false;
  const auth = { ver: 1, op: Op.Auth, seq: 1, body: authBody({ key: "broken" }) };
  const wire = {
    info,
    read(): Promise<Frame | null> {
      // The auth frame, then a read that throws instead of rejecting.
      if (reads++ === 0) return Promise.resolve(auth);
      throw new Error("Read exploded");
    },
    encode: (chunks: readonly Uint8Array[]) => chunks[0]!,
    write: () => Promise.resolve(),
    close: () => void (closed = true),
  };
  const server = listenTcp(comet, { port: 0 });
  try {
    await using c = await TestClient.auth(server.addr.port, { key: "healthy" });
    await comet.serve(wire);
    assert.ok(closed, "the broken wire was closed");
    assert.equal(comet.connections, 1);
    assert.equal(await heartbeat(c), 0);
  } finally {
    await server[Symbol.asyncDispose]();
  }
});
