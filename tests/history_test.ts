// Streams over real connections (docs/protocol.md, section 8): goim clients see the bytes of
// before, opted-in clients get positions, op-18 frames, and the pushes they missed.
import assert from "node:assert/strict";
import { Op } from "../src/protocol/op.ts";
import { StreamKind } from "../src/protocol/stream_push.ts";
import { collectMetrics, formatMetrics } from "../src/api/metrics.ts";
import { MemoryHistory } from "../src/server/memory_history.ts";
import { startServer, TestClient, text, until, utf8 } from "./_helpers.ts";
import {
  at,
  authWith,
  frameBytes,
  LateHistory,
  optIn,
  plainBytes,
  streamPush,
} from "./_streams.ts";
import { connectWs } from "./_transports.ts";

const ROOM = "live://1";
const body = (s: string) => utf8.encode(s);

Deno.test("a goim client sees the same bytes with history on", async () => {
  await using server = startServer();
  assert.ok(server.comet.history !== undefined, "serve() keeps history by default");
  await using c = await TestClient.auth(server.addrs.tcp!.port, {
    mid: 7,
    key: "k1",
    room_id: ROOM,
    accepts: [1000],
  });
  const comet = server.comet;
  comet.pushRoom(ROOM, 1000, body("room"));
  comet.pushMids([7], 1000, body("mid"));
  comet.pushAll(1000, body("all"));
  comet.pushKeys(["k1"], 1000, body("key"));
  for (const expected of ["room", "mid", "all", "key"]) {
    assert.deepEqual(frameBytes(await c.next()), plainBytes(1000, expected));
  }
});

Deno.test("a goim client's auth reply stays empty with history on", async () => {
  await using server = startServer();
  const { client, reply } = await authWith(server.addrs.tcp!.port, { mid: 7, room_id: ROOM });
  await using _ = client;
  assert.equal(reply.body.length, 0);
});

Deno.test("an opted-in client gets positions and op-18 frames with offsets", async () => {
  await using server = startServer();
  const { client, streams } = await optIn(server.addrs.tcp!.port, {
    mid: 7,
    room_id: ROOM,
    accepts: [1000],
    recover: {},
  });
  await using c = client;
  assert.deepEqual(Object.keys(streams), ["room", "mid", "all"]);
  assert.equal(streams.room!.id, ROOM);
  for (const s of [streams.room!, streams.mid!, streams.all!]) {
    assert.equal(s.offset, 0);
    assert.ok(s.epoch > 0);
    assert.equal(s.recovered, undefined);
  }
  const comet = server.comet;
  for (let i = 1; i <= 3; i++) {
    comet.pushRoom(ROOM, 1000, body(`r${i}`));
    comet.pushMids([7], 1000, body(`m${i}`));
    comet.pushAll(1000, body(`a${i}`));
  }
  for (let i = 1; i <= 3; i++) {
    const kinds: [number, string, number][] = [
      [StreamKind.Room, "r", streams.room!.epoch],
      [StreamKind.Mid, "m", streams.mid!.epoch],
      [StreamKind.All, "a", streams.all!.epoch],
    ];
    for (const [kind, prefix, epoch] of kinds) {
      const push = streamPush(await c.next());
      assert.deepEqual(push, { kind, epoch, offset: i, op: 1000, body: `${prefix}${i}` });
    }
  }
});

Deno.test("a reconnecting client gets exactly what it missed, in order, then live pushes", async () => {
  await using server = startServer();
  const port = server.addrs.tcp!.port;
  const comet = server.comet;
  const auth = { mid: 7, key: "k1", room_id: ROOM, accepts: [1000] };
  const first = await optIn(port, { ...auth, recover: {} });
  comet.pushRoom(ROOM, 1000, body("r1"));
  comet.pushMids([7], 1000, body("m1"));
  const r1 = streamPush(await first.client.next());
  const m1 = streamPush(await first.client.next());
  await first.client.close();
  assert.ok(await until(() => comet.connections === 0));
  comet.pushRoom(ROOM, 1000, body("r2"));
  comet.pushRoom(ROOM, 1000, body("r3"));
  comet.pushMids([7], 1000, body("m2"));
  comet.pushAll(1000, body("a1"));

  const { client, streams } = await optIn(port, {
    ...auth,
    recover: {
      room: { id: ROOM, epoch: r1.epoch, offset: r1.offset },
      mid: { epoch: m1.epoch, offset: m1.offset },
      all: { ...at(first.streams.all!) },
    },
  });
  await using c = client;
  assert.deepEqual(streams.room, {
    id: ROOM,
    epoch: r1.epoch,
    offset: 3,
    recovered: true,
  });
  assert.deepEqual(streams.mid, { epoch: m1.epoch, offset: 2, recovered: true });
  assert.deepEqual(streams.all, { epoch: first.streams.all!.epoch, offset: 1, recovered: true });
  const replay = [];
  for (let i = 0; i < 4; i++) replay.push(streamPush(await c.next()));
  assert.deepEqual(replay.map((p) => [p.kind, p.offset, p.body]), [
    [StreamKind.Room, 2, "r2"],
    [StreamKind.Room, 3, "r3"],
    [StreamKind.Mid, 2, "m2"],
    [StreamKind.All, 1, "a1"],
  ]);
  comet.pushRoom(ROOM, 1000, body("r4"));
  const live = streamPush(await c.next());
  assert.deepEqual([live.offset, live.body], [4, "r4"]);
  assert.ok(await c.silent(100), "nothing comes twice");
  assert.equal(comet.stats.recoveries.recovered, 3);
});

Deno.test("a client that missed more than the window recovers nothing old", async () => {
  await using server = startServer({ historySize: 2 });
  const port = server.addrs.tcp!.port;
  const comet = server.comet;
  const auth = { mid: 7, room_id: ROOM, recover: {} };
  const first = await optIn(port, auth);
  await first.client.close();
  for (let i = 1; i <= 3; i++) comet.pushRoom(ROOM, 1000, body(`r${i}`));
  const { client, streams } = await optIn(port, {
    ...auth,
    recover: { room: { id: ROOM, ...at(first.streams.room!) } },
  });
  await using c = client;
  assert.deepEqual(streams.room, {
    id: ROOM,
    epoch: first.streams.room!.epoch,
    offset: 3,
    recovered: false,
    reason: "window",
  });
  comet.pushRoom(ROOM, 1000, body("r4"));
  assert.deepEqual(streamPush(await c.next()).body, "r4");
  assert.equal(comet.stats.recoveries.window, 1);
});

Deno.test("a client with another epoch is told so, and one in another room too", async () => {
  await using server = startServer();
  const port = server.addrs.tcp!.port;
  server.comet.pushAll(1000, body("a1"));
  const { client, streams } = await optIn(port, {
    mid: 7,
    room_id: ROOM,
    recover: {
      room: { id: "live://other", epoch: 1, offset: 0 },
      all: { epoch: 0, offset: 0 },
    },
  });
  await using _ = client;
  assert.equal(streams.all!.recovered, false);
  assert.equal(streams.all!.reason, "epoch");
  assert.equal(streams.all!.offset, 1);
  assert.deepEqual({ ...streams.room, epoch: 0 }, {
    id: ROOM,
    epoch: 0,
    offset: 0,
    recovered: false,
    reason: "room",
  });
  assert.equal(streams.mid!.recovered, undefined, "not asked, so not answered");
  assert.deepEqual(server.comet.stats.recoveries, { recovered: 0, epoch: 1, window: 0, room: 1 });
});

Deno.test("pushes to keys reach an opted-in client as plain pushes", async () => {
  await using server = startServer();
  const { client } = await optIn(server.addrs.tcp!.port, {
    key: "k1",
    mid: 7,
    accepts: [1000],
    recover: {},
  });
  await using c = client;
  server.comet.pushKeys(["k1"], 1000, body("key"));
  assert.deepEqual(frameBytes(await c.next()), plainBytes(1000, "key"));
});

Deno.test("watched ops apply to op 18 by the pushed op", async () => {
  await using server = startServer();
  const { client } = await optIn(server.addrs.tcp!.port, {
    mid: 7,
    accepts: [1000],
    recover: {},
  });
  await using c = client;
  server.comet.pushMids([7], 1001, body("unwatched"));
  server.comet.pushAll(1001, body("unwatched"));
  server.comet.pushMids([7], 1000, body("watched"));
  const push = streamPush(await c.next());
  assert.deepEqual([push.body, push.offset], ["watched", 2]);
});

Deno.test("with history off an opted-in client is told so and gets plain pushes", async () => {
  await using server = startServer({ historySize: 0 });
  assert.equal(server.comet.history, undefined);
  const { client, reply } = await authWith(server.addrs.tcp!.port, {
    mid: 7,
    room_id: ROOM,
    recover: { room: { id: ROOM, epoch: 5, offset: 3 } },
  });
  await using c = client;
  assert.equal(text(reply.body), '{"streams":{}}');
  server.comet.pushRoom(ROOM, 1000, body("r1"));
  assert.deepEqual(frameBytes(await c.next()), plainBytes(1000, "r1"));
  c.sendFrame(Op.ChangeRoom, "live://2");
  assert.equal(text((await c.nextOp(Op.ChangeRoomReply)).body), '{"id":"live://2"}');
});

Deno.test("a malformed recover field refuses the auth", async () => {
  await using server = startServer();
  for (
    const recover of [[], 5, { mid: { epoch: -1, offset: 0 } }, { room: { epoch: 1, offset: 1 } }]
  ) {
    await using c = await TestClient.connect(server.addrs.tcp!.port);
    c.sendFrame(Op.Auth, JSON.stringify({ mid: 7, recover }));
    const reply = await c.nextOp(Op.DisconnectReply);
    assert.match(text(reply.body), /^auth failed: Recover /);
  }
});

Deno.test("op 13 of an opted-in client carries the new room's position", async () => {
  await using server = startServer();
  const comet = server.comet;
  comet.pushRoom("live://2", 1000, body("before"));
  const { client } = await optIn(server.addrs.tcp!.port, { mid: 7, room_id: ROOM, recover: {} });
  await using c = client;
  c.sendFrame(Op.ChangeRoom, "live://2");
  const moved = JSON.parse(text((await c.nextOp(Op.ChangeRoomReply)).body));
  assert.deepEqual(Object.keys(moved), ["id", "epoch", "offset"]);
  assert.equal(moved.id, "live://2");
  assert.equal(moved.offset, 1);
  comet.pushRoom("live://2", 1000, body("after"));
  const push = streamPush(await c.next());
  assert.deepEqual([push.epoch, push.offset, push.body], [moved.epoch, 2, "after"]);
  c.sendFrame(Op.ChangeRoom, "");
  assert.equal(text((await c.nextOp(Op.ChangeRoomReply)).body), '{"id":""}');
});

for (const snapshot of ["call", "release"] as const) {
  Deno.test(`an answer that comes later (taken at the ${snapshot}) holds pushes, drops none and repeats none`, async () => {
    const history = new LateHistory(new MemoryHistory({ size: 100, ttl: 60_000 }), snapshot);
    await using server = startServer({ history });
    const comet = server.comet;
    const port = server.addrs.tcp!.port;
    const r1 = comet.pushRoom(ROOM, 1000, body("r1"));
    assert.equal(r1, 0);
    const seen = history.inner.answer([{ stream: `room:${ROOM}` }]) as { epoch: number }[];
    const epoch = seen[0]!.epoch;
    const c = await TestClient.connect(port);
    await using _ = c;
    const seq = c.sendFrame(
      Op.Auth,
      JSON.stringify({
        key: "k1",
        mid: 7,
        room_id: ROOM,
        accepts: [1000],
        recover: { room: { id: ROOM, epoch, offset: 0 } },
      }),
    );
    assert.ok(await until(() => history.waiting === 1));
    assert.equal(comet.connections, 1, "registered while the answer is on its way");
    comet.pushRoom(ROOM, 1000, body("r2"));
    comet.pushKeys(["k1"], 1000, body("key"));
    comet.pushRoom(ROOM, 1000, body("r3"));
    assert.ok(await c.silent(50), "nothing before op 8");
    history.release();
    const reply = await c.next();
    assert.equal(reply.op, Op.AuthReply);
    assert.equal(reply.seq, seq);
    const room = JSON.parse(text(reply.body)).streams.room;
    assert.equal(room.recovered, true);
    assert.equal(room.offset, snapshot === "call" ? 1 : 3);
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const f = await c.next().catch((e) => {
        throw new Error(`after ${got.join(" ")}: ${e.message}`);
      });
      got.push(
        f.op === Op.StreamPush ? `${streamPush(f).offset}:${streamPush(f).body}` : text(f.body),
      );
    }
    // The key push was held between r2 and r3; a replay goes before whatever was held.
    assert.deepEqual(
      got,
      snapshot === "call" ? ["1:r1", "2:r2", "key", "3:r3"] : ["1:r1", "2:r2", "3:r3", "key"],
    );
    comet.pushRoom(ROOM, 1000, body("r4"));
    assert.equal(streamPush(await c.next()).offset, 4);
    assert.ok(await c.silent(50));
  });
}

Deno.test("a history that fails to answer closes the connection and counts it", async () => {
  const history = new LateHistory(new MemoryHistory({ size: 10, ttl: 60_000 }), "release");
  await using server = startServer({ history });
  const c = await TestClient.connect(server.addrs.tcp!.port);
  await using _ = c;
  c.sendFrame(Op.Auth, JSON.stringify({ mid: 7, recover: {} }));
  assert.ok(await until(() => history.waiting === 1));
  history.release(new Error("Redis went away"));
  const bye = await c.nextOp(Op.DisconnectReply);
  assert.equal(text(bye.body), "recovery failed: Redis went away");
  assert.equal(server.comet.stats.recoveryFailed, 1);
  assert.ok(await until(() => server.comet.connections === 0));
});

Deno.test("a room change answered later keeps the new room's pushes behind op 13", async () => {
  const history = new LateHistory(new MemoryHistory({ size: 10, ttl: 60_000 }), "release");
  await using server = startServer({ history });
  const comet = server.comet;
  const c = await TestClient.connect(server.addrs.tcp!.port);
  await using _ = c;
  c.sendFrame(Op.Auth, JSON.stringify({ mid: 7, recover: {} }));
  assert.ok(await until(() => history.waiting === 1));
  history.release();
  assert.equal((await c.next()).op, Op.AuthReply);
  c.sendFrame(Op.ChangeRoom, "live://2");
  assert.ok(await until(() => history.waiting === 1));
  comet.pushRoom("live://2", 1000, body("during"));
  history.release();
  const moved = JSON.parse(text((await c.next()).body));
  assert.deepEqual([moved.id, moved.offset], ["live://2", 1]);
  comet.pushRoom("live://2", 1000, body("after"));
  const push = streamPush(await c.next());
  assert.deepEqual([push.offset, push.body], [2, "after"]);
});

Deno.test("an opted-in WebSocket client gets op 8 and op-18 frames", async () => {
  await using server = startServer();
  await using c = await connectWs(server.addrs.ws!.port);
  await c.send(Op.Auth, JSON.stringify({ mid: 7, room_id: ROOM, recover: {} }));
  const reply = await c.next();
  assert.equal(reply.op, Op.AuthReply);
  const { streams } = JSON.parse(text(reply.body));
  server.comet.pushRoom(ROOM, 1000, body("r1"));
  server.comet.pushRoom(ROOM, 1000, body("r2"));
  for (const offset of [1, 2]) {
    const push = streamPush(await c.next());
    assert.deepEqual([push.kind, push.epoch, push.offset], [
      StreamKind.Room,
      streams.room.epoch,
      offset,
    ]);
  }
});

Deno.test("metrics report what the history holds and recoveries by result", async () => {
  await using server = startServer();
  const comet = server.comet;
  comet.pushRoom(ROOM, 1000, body("r1"));
  comet.pushAll(1000, body("a1"));
  const { client } = await optIn(server.addrs.tcp!.port, {
    mid: 7,
    recover: { all: { epoch: 0, offset: 0 } },
  });
  await using _ = client;
  const text = formatMetrics(collectMetrics(comet, { cluster: server.cluster }));
  assert.match(text, /^comet_history_streams 3$/m, "room, all and the client's mid");
  assert.match(text, /^comet_history_entries 2$/m);
  assert.match(text, /^comet_history_bytes 4$/m);
  assert.match(text, /^comet_recoveries_total\{result="epoch"\} 1$/m);
  assert.match(text, /^comet_recoveries_total\{result="recovered"\} 0$/m);
  assert.match(text, /^comet_recovery_failed_total 0$/m);
});

Deno.test("opted-in members move to the room's op-18 log after their first push, and miss nothing", async () => {
  await using server = startServer();
  const port = server.addrs.tcp!.port;
  const auth = (mid: number) => ({ mid, room_id: ROOM, accepts: [1000], recover: {} });
  const a = await optIn(port, auth(1));
  const b = await optIn(port, auth(2));
  await using plain = await TestClient.auth(port, { mid: 3, room_id: ROOM, accepts: [1000] });
  await using ca = a.client;
  await using cb = b.client;
  const comet = server.comet;
  comet.pushRoom(ROOM, 1000, body("r1"));
  // After the first push each opted-in member reads the twin log: later pushes cost one append.
  const room = () => [...comet.rooms.keys()].includes(ROOM);
  assert.ok(room());
  for (let i = 2; i <= 40; i++) comet.pushRoom(ROOM, 1000, body(`r${i}`));
  for (const c of [ca, cb]) {
    for (let i = 1; i <= 40; i++) {
      assert.deepEqual(streamPush(await c.next()), {
        kind: StreamKind.Room,
        epoch: a.streams.room!.epoch,
        offset: i,
        op: 1000,
        body: `r${i}`,
      });
    }
    assert.ok(await c.silent(50));
  }
  for (let i = 1; i <= 40; i++) {
    const f = await plain.next();
    assert.deepEqual([f.op, text(f.body)], [1000, `r${i}`]);
  }
  assert.equal(comet.roomOnline(ROOM), 3);
  // Leaving from the twin log counts like leaving the room.
  await ca.close();
  assert.ok(await until(() => comet.roomOnline(ROOM) === 2));
});

Deno.test("a stream push an opted-in connection already holds is not sent to it again", async () => {
  await using server = startServer();
  const port = server.addrs.tcp!.port;
  const { client, streams } = await optIn(port, {
    mid: 9,
    room_id: ROOM,
    accepts: [1000],
    recover: {},
  });
  await using c = client;
  const comet = server.comet;
  comet.pushRoom(ROOM, 1000, body("r1"));
  comet.pushRoom(ROOM, 1000, body("r2"));
  assert.equal(streamPush(await c.next()).offset, 1);
  assert.equal(streamPush(await c.next()).offset, 2);
  // What a Redis node's late pub/sub or a gap fill could bring: offset 2 again, then 3.
  const epoch = streams.room!.epoch;
  comet.deliver({
    kind: "room",
    op: 1000,
    room: ROOM,
    body: body("r2"),
    stamp: { epoch, offset: 2 },
  });
  comet.deliver({
    kind: "room",
    op: 1000,
    room: ROOM,
    body: body("r3"),
    stamp: { epoch, offset: 3 },
  });
  const next = streamPush(await c.next());
  assert.deepEqual([next.offset, next.body], [3, "r3"]);
  assert.ok(await c.silent(50));
});

Deno.test("a room change the server makes tells an opted-in client the new room's position, a goim client nothing", async () => {
  await using server = startServer();
  const port = server.addrs.tcp!.port;
  const { client } = await optIn(port, { mid: 4, key: "in", room_id: ROOM, recover: {} });
  await using opted = client;
  await using plain = await TestClient.auth(port, { mid: 5, key: "out", room_id: ROOM });
  const comet = server.comet;
  comet.pushRoom("live://2", 1000, body("before"));
  comet.changeRoom(comet.channel("in")!, "live://2");
  comet.changeRoom(comet.channel("out")!, "live://2");
  const moved = await opted.next();
  assert.deepEqual([moved.op, moved.seq], [Op.ChangeRoomReply, 0]);
  const at = JSON.parse(text(moved.body));
  assert.deepEqual(at, { id: "live://2", epoch: at.epoch, offset: 1 });
  comet.pushRoom("live://2", 1000, body("after"));
  assert.deepEqual(streamPush(await opted.next()), {
    kind: StreamKind.Room,
    epoch: at.epoch,
    offset: 2,
    op: 1000,
    body: "after",
  });
  const f = await plain.next();
  assert.deepEqual([f.op, text(f.body)], [1000, "after"]);
});
