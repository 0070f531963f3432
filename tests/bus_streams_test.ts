// Streams across the workers of a process: one owner orders each stream, the others get its
// pushes stamped and in order, and ask it where a stream stands (tests/_bus_fake_hubs.ts).
import assert from "node:assert/strict";
import { BusCluster } from "../src/cluster/bus_cluster.ts";
import { OwnerUnavailableError } from "../src/cluster/bus_owner_unavailable_error.ts";
import { PortMesh } from "../src/cluster/bus_port_mesh.ts";
import { BusStreams } from "../src/cluster/bus_streams.ts";
import { streamOwner, unstamped } from "../src/cluster/stream_owner.ts";
import { type Logger, silentLogger } from "../src/log.ts";
import type { Push } from "../src/server/push.ts";
import { midStream, roomStream, type StreamAnswer } from "../src/server/streams.ts";
import { api, TestClient, text, until } from "./_helpers.ts";
import { Op } from "../src/protocol/op.ts";
import { decodeStreamPush } from "../src/protocol/stream_push.ts";
import { channelName, nextBiz, RawPeer, Workers } from "./_bus_workers.ts";
import { BIZ, FakeHub, FakeWorkers, type Got, LIMITS, ownedBy } from "./_bus_fake_hubs.ts";

const enc = new TextEncoder();

/** Offsets 1 to n, one epoch, in order. */
function assertWhole(got: Got[], n: number, label: string): void {
  assert.equal(got.length, n, label);
  const epoch = got[0]?.stamp?.epoch;
  assert.ok(epoch !== undefined && epoch > 0, label);
  for (const [i, g] of got.entries()) assert.deepEqual(g.stamp, { epoch, offset: i + 1 }, label);
}

Deno.test("1,000 room pushes entered at different workers reach every worker in one order", async () => {
  await using w = await FakeWorkers.start(3);
  const stream = roomStream("live://1");
  const results = [];
  for (let n = 0; n < 1_000; n++) {
    results.push(w.clusters[n % 3]!.pushRoom("live://1", BIZ, enc.encode(`p${n}`)));
    // Some turns take one push, some many: both batchings cross.
    if (n % 7 === 0) await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(results);
  assert.ok(await until(() => w.hubs.every((h) => h.stream(stream).length >= 1_000)));
  const first = w.hubs[0]!.stream(stream);
  for (const [i, hub] of w.hubs.entries()) {
    assertWhole(hub.stream(stream), 1_000, `worker ${i}`);
    assert.deepEqual(hub.stream(stream), first, `worker ${i} got the owner's order`);
  }
  assert.equal(new Set(first.map((g) => g.body)).size, 1_000, "each push once");
  const owner = streamOwner(stream, 3);
  const [answer] = await w.history(owner).answer([{ stream }]);
  assert.deepEqual([answer!.epoch, answer!.offset], [first[0]!.stamp!.epoch, 1_000]);
});

Deno.test("a mids push to users owned by different workers gets each user's own offsets", async () => {
  await using w = await FakeWorkers.start(3);
  const mids = [0, 1, 2].map((owner) => ownedBy(owner, 3, midStream));
  for (let n = 0; n < 30; n++) {
    await w.clusters[n % 3]!.pushMids(mids, BIZ, enc.encode(`m${n}`));
  }
  const streams = mids.map(midStream);
  assert.ok(await until(() => w.hubs.every((h) => streams.every((s) => h.stream(s).length >= 30))));
  for (const stream of streams) {
    const first = w.hubs[0]!.stream(stream);
    for (const [i, hub] of w.hubs.entries()) {
      assertWhole(hub.stream(stream), 30, `${stream} on worker ${i}`);
      assert.deepEqual(hub.stream(stream), first, `${stream} on worker ${i}`);
    }
  }
  // Each user's stream has its owner's epoch: three sequencers, not one.
  const epochs = streams.map((s) => w.hubs[0]!.stream(s)[0]!.stamp!.epoch);
  for (const [j, stream] of streams.entries()) {
    const [answer] = w.hubs[j]!.history!.answer([{ stream }]) as StreamAnswer[];
    assert.deepEqual([answer!.epoch, answer!.offset], [epochs[j], 30]);
  }
});

Deno.test("an answer about another worker's stream gives the owner's position and entries", async () => {
  await using w = await FakeWorkers.start(3);
  const room = `live://${ownedBy(2, 3, (n) => roomStream(`live://${n}`))}`;
  const stream = roomStream(room);
  const mine = midStream(ownedBy(0, 3, midStream));
  for (let n = 1; n <= 5; n++) await w.clusters[1]!.pushRoom(room, BIZ, enc.encode(`r${n}`));
  assert.ok(await until(() => w.hubs[0]!.top(stream) === 5));
  const epoch = w.hubs[0]!.stream(stream)[0]!.stamp!.epoch;
  const answers = await w.history(0).answer([
    { stream: mine },
    { stream, from: { epoch, offset: 2 } },
    { stream, from: { epoch: epoch === 1 ? 2 : 1, offset: 2 } },
  ]);
  assert.equal(answers.length, 3);
  assert.deepEqual([answers[0]!.stream, answers[0]!.offset], [mine, 0], "its own, answered here");
  const { entries, ...position } = answers[1]!;
  assert.deepEqual(position, { stream, epoch, offset: 5, recovered: true });
  assert.deepEqual(entries.map((e) => [e.offset, e.op, new TextDecoder().decode(e.body)]), [
    [3, BIZ, "r3"],
    [4, BIZ, "r4"],
    [5, BIZ, "r5"],
  ]);
  assert.deepEqual(answers[2], {
    stream,
    epoch,
    offset: 5,
    recovered: false,
    reason: "epoch",
    entries: [],
  });
  // The owner's own answer is the same, at once.
  const [own] = w.history(2).answer([{ stream, from: { epoch, offset: 2 } }]) as StreamAnswer[];
  assert.deepEqual(own, answers[1]);
});

Deno.test("an answer never overtakes the pushes its owner stamped before answering", async () => {
  await using w = await FakeWorkers.start(3);
  const room = `live://${ownedBy(1, 3, (n) => roomStream(`live://${n}`))}`;
  const stream = roomStream(room);
  const asker = w.hubs[0]!;
  // At each answer: the last offset the asker got, and the answer's.
  const seen: [got: number, answered: number][] = [];
  for (let round = 0; round < 150; round++) {
    // Pushes taken at the owner itself and routed from the others, in flight as the asker asks.
    for (const i of [1, 2, 0, 1]) void w.clusters[i]!.pushRoom(room, BIZ, enc.encode(`${round}`));
    const asks = [];
    for (let k = 0; k < 3; k++) {
      asks.push(
        Promise.resolve(w.history(0).answer([{ stream }])).then(([answer]) => {
          seen.push([asker.top(stream), answer!.offset]);
        }),
      );
      if (k === 1) await new Promise((r) => setTimeout(r, 0));
    }
    await Promise.all(asks);
  }
  assert.equal(seen.length, 450);
  // Everything up to the answer's offset came first. A push stamped after the answer may
  // also be in already (the next turn's batch can beat the answer's callback): the hub
  // holds a joining client's pushes and sends those past the answer live.
  for (const [n, [got, answered]] of seen.entries()) {
    assert.ok(got >= answered, `answer ${n}: got ${got}, answered ${answered}`);
  }
  assert.ok(await until(() => asker.top(stream) === 600));
  assertWhole(asker.stream(stream), 600, "asker");
});

Deno.test("many answers in flight at once are each matched to their question", async () => {
  await using w = await FakeWorkers.start(2);
  const rooms = [1, 2, 3, 4, 5].map((k) => {
    const n = ownedBy(1, 2, (n) => roomStream(`live://${k}-${n}`));
    return `live://${k}-${n}`;
  });
  for (const [k, room] of rooms.entries()) {
    for (let n = 0; n <= k; n++) await w.clusters[0]!.pushRoom(room, BIZ, enc.encode("x"));
  }
  // Stamped by their owner and back here: an ask may overtake pushes not yet ordered.
  assert.ok(await until(() => rooms.every((r, k) => w.hubs[0]!.top(roomStream(r)) === k + 1)));
  const asked = [];
  for (let n = 0; n < 100; n++) {
    const room = rooms[n % 5]!;
    asked.push(Promise.resolve(w.history(0).answer([{ stream: roomStream(room) }])));
  }
  const answers = await Promise.all(asked);
  for (const [n, [answer]] of answers.entries()) {
    assert.deepEqual([answer!.stream, answer!.offset], [roomStream(rooms[n % 5]!), (n % 5) + 1]);
  }
});

Deno.test("a question to an owner still starting waits for its hello and gets its answer", async () => {
  const mesh = new PortMesh();
  const { port1, port2 } = new MessageChannel();
  mesh.connect(1, port1);
  await using cluster = new BusCluster({ workerId: 0, workers: 2, transport: mesh });
  const hub = new FakeHub();
  hub.history = cluster.history(LIMITS);
  cluster.attach(hub, { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 });
  const theirs = roomStream(`live://${ownedBy(1, 2, (n) => roomStream(`live://${n}`))}`);
  // Asked before worker 1 is up: a client connecting during the start must not be refused.
  const answer = Promise.resolve(hub.history!.answer([{ stream: theirs }]));
  port2.onmessage = (e) => {
    const m = e.data as { t: string; id: number; i: string };
    if (m.t !== "hist") return;
    const answers = [{ stream: theirs, epoch: 5, offset: 9, entries: [] }];
    port2.postMessage({ t: "hist-reply", w: 1, i: "one", s: 1, to: m.i, id: m.id, answers });
  };
  port2.postMessage({ t: "hello", snap: { conns: 0, rooms: [], ips: [] }, w: 1, i: "one", s: 1 });
  const [got] = await answer;
  assert.deepEqual(got, { stream: theirs, epoch: 5, offset: 9, entries: [] });
  port2.close();
});

Deno.test("an answer from an owner that is silent times out, and one that died fails at once", async () => {
  const mesh = new PortMesh();
  const { port1, port2 } = new MessageChannel();
  mesh.connect(1, port1);
  await using cluster = new BusCluster({
    workerId: 0,
    workers: 2,
    transport: mesh,
    answerTimeout: 150,
  });
  const hub = new FakeHub();
  hub.history = cluster.history(LIMITS);
  cluster.attach(hub, { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 });
  const theirs = roomStream(`live://${ownedBy(1, 2, (n) => roomStream(`live://${n}`))}`);
  // Not heard yet: not running.
  await assert.rejects(
    () => Promise.resolve(hub.history!.answer([{ stream: theirs }])),
    OwnerUnavailableError,
  );
  // A peer that says hello, then nothing.
  const heard: { t: string; pushes?: Push[] }[] = [];
  port2.onmessage = (e) => heard.push(e.data);
  port2.postMessage({
    t: "hello",
    snap: { conns: 0, rooms: [], ips: [] },
    w: 1,
    i: "silent",
    s: 1,
  });
  assert.ok(await until(() => cluster.health().detail.workers === 2));
  await assert.rejects(
    () => Promise.resolve(hub.history!.answer([{ stream: theirs }])),
    (err: Error) =>
      err instanceof OwnerUnavailableError && /did not answer in 150 ms/.test(err.message),
  );
  // A push to its stream goes to it unstamped, for it to order.
  const room = theirs.slice("room:".length);
  assert.deepEqual(await cluster.pushRoom(room, BIZ, enc.encode("hi")), {
    local: 0,
    remote: 1,
    degraded: false,
  });
  assert.ok(await until(() => heard.some((m) => m.t === "route")));
  const route = heard.find((m) => m.t === "route")!;
  assert.deepEqual(route.pushes!.map((p) => [p.kind, "stamp" in p]), [["room", false]]);
  assert.equal(hub.stream(theirs).length, 0, "delivered only once its owner stamps it");
  // An ask in flight when the owner dies fails then, not at the timeout.
  const pending = Promise.resolve(hub.history!.answer([{ stream: theirs }]));
  mesh.disconnect(1);
  await assert.rejects(() => pending, /left before answering/);
  port2.close();
});

Deno.test("a restarted owner orders its streams again under a new epoch; pushes wait for it", async () => {
  await using w = await FakeWorkers.start(3);
  const room = `live://${ownedBy(2, 3, (n) => roomStream(`live://${n}`))}`;
  const stream = roomStream(room);
  for (let n = 0; n < 3; n++) await w.clusters[0]!.pushRoom(room, BIZ, enc.encode(`a${n}`));
  assert.ok(await until(() => w.hubs[1]!.top(stream) === 3));
  const before = w.hubs[1]!.stream(stream)[0]!.stamp!.epoch;
  await w.kill(2);
  await assert.rejects(
    () => Promise.resolve(w.history(1).answer([{ stream }])),
    OwnerUnavailableError,
  );
  // Taken while its owner is down: they wait, and are ordered once it is back.
  for (let n = 0; n < 2; n++) await w.clusters[0]!.pushRoom(room, BIZ, enc.encode(`b${n}`));
  w.add(2);
  assert.ok(await w.settled());
  assert.ok(await until(() => w.hubs[1]!.stream(stream).length === 5));
  const after = w.hubs[1]!.stream(stream).slice(3);
  assert.notEqual(after[0]!.stamp!.epoch, before);
  assert.deepEqual(after.map((g) => [g.stamp!.offset, g.body]), [[1, "b0"], [2, "b1"]]);
  const [answer] = await w.history(0).answer([{ stream, from: { epoch: before, offset: 3 } }]);
  assert.deepEqual([answer!.epoch, answer!.offset, answer!.reason], [
    after[0]!.stamp!.epoch,
    2,
    "epoch",
  ]);
});

Deno.test("with streams off, pushes are not routed and carry no stamps", async () => {
  await using w = await FakeWorkers.start(2, { off: true });
  const room = `live://${ownedBy(1, 2, (n) => roomStream(`live://${n}`))}`;
  assert.deepEqual(await w.clusters[0]!.pushRoom(room, BIZ, enc.encode("x")), {
    local: 1,
    remote: 1,
    degraded: false,
  });
  assert.ok(await until(() => w.hubs[1]!.stream(roomStream(room)).length === 1));
  assert.equal(w.hubs[0]!.stream(roomStream(room))[0]!.stamp, undefined);
});

Deno.test("a key push is delivered where it is taken and posted to the others, as before", async () => {
  await using w = await FakeWorkers.start(2);
  assert.deepEqual(await w.clusters[1]!.pushKeys(["k"], BIZ, enc.encode("k")), {
    local: 1,
    remote: 1,
    degraded: false,
  });
  assert.ok(await until(() => w.hubs[0]!.stream("keys").length === 1));
});

/** A bus link of worker 0 that reaches nobody, logging to `logger`. */
function _loneLink(logger: Logger) {
  return {
    workerId: 0,
    send: () => false,
    heard: () => false,
    flush: () => {},
    schedule: () => {},
    logger: () => logger,
  };
}

Deno.test("a stream another worker owns is never stamped here, and the bug is logged once", () => {
  const errors: string[] = [];
  const logger: Logger = { ...silentLogger, error: (message) => errors.push(message) };
  const link = _loneLink(logger);
  const streams = new BusStreams(link, { limits: LIMITS, workers: 2, timeout: 1_000 });
  const theirs = roomStream(`live://${ownedBy(1, 2, (n) => roomStream(`live://${n}`))}`);
  const mine = roomStream(`live://${ownedBy(0, 2, (n) => roomStream(`live://${n}`))}`);
  assert.equal(streams.append(theirs, BIZ, new Uint8Array()), undefined);
  assert.equal(streams.append(theirs, BIZ, new Uint8Array()), undefined);
  assert.equal(errors.length, 1);
  assert.equal(streams.append(mine, BIZ, new Uint8Array([1, 2]))?.offset, 1);
  const { streams: known, entries, bytes } = streams.figures();
  assert.deepEqual({ streams: known, entries, bytes }, { streams: 1, entries: 1, bytes: 2 });
  streams.close();
});

Deno.test("stream owners are stable, spread over the workers, and keep the push's fields", () => {
  assert.equal(streamOwner("room:live://1", 4), streamOwner("room:live://1", 4));
  const seen = new Set<number>();
  for (let n = 0; n < 100; n++) seen.add(streamOwner(midStream(n), 4));
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3]);
  assert.throws(() => streamOwner("all", 0), RangeError);
  const body = new Uint8Array([1]);
  const stamped: Push = {
    kind: "mids",
    op: BIZ,
    mids: [1],
    body,
    stamps: [{ epoch: 1, offset: 1 }],
  };
  assert.deepEqual(unstamped(stamped), { kind: "mids", op: BIZ, mids: [1], body });
  const plain: Push = { kind: "keys", op: BIZ, keys: ["k"], body };
  assert.equal(unstamped(plain), plain);
});

Deno.test("BusCluster refuses a worker count it cannot serve, and a second history", async () => {
  assert.throws(() => new BusCluster({ workerId: 0, workers: 2, channel: "x" }), TypeError);
  const mesh = new PortMesh();
  assert.throws(() => new BusCluster({ workerId: 2, workers: 2, transport: mesh }), RangeError);
  assert.throws(
    () => new BusCluster({ workerId: 0, transport: mesh, answerTimeout: 0 }),
    RangeError,
  );
  await using cluster = new BusCluster({ workerId: 0, workers: 1, transport: mesh });
  cluster.history(LIMITS);
  assert.throws(() => cluster.history(LIMITS), TypeError);
});

Deno.test("on the edge's channel each isolate orders its own streams, anew after lost messages", async () => {
  const name = channelName();
  const address = { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 };
  await using a = new BusCluster({ workerId: 0, channel: name });
  await using b = new BusCluster({ workerId: 1, channel: name });
  const [hubA, hubB] = [new FakeHub(), new FakeHub()];
  hubA.history = a.history(LIMITS);
  hubB.history = b.history(LIMITS);
  a.attach(hubA, address);
  b.attach(hubB, address);
  assert.ok(await until(() => a.health().detail.workers === 2 && b.health().detail.workers === 2));
  const stream = roomStream("live://1");
  assert.deepEqual(await a.pushRoom("live://1", BIZ, enc.encode("one")), {
    local: 1,
    remote: 1,
    degraded: false,
  });
  assert.ok(await until(() => hubB.stream(stream).length === 1));
  // Each stamped it in its own history: B's stamp is B's, not A's.
  const [ownB] = hubB.history.answer([{ stream }]) as StreamAnswer[];
  assert.deepEqual(hubB.stream(stream)[0]!.stamp, { epoch: ownB!.epoch, offset: 1 });
  assert.equal(hubA.stream(stream)[0]!.stamp!.offset, 1);
  // A peer whose messages B and A missed: every stream of theirs starts again.
  using peer = new RawPeer(name, 4);
  peer.post({ t: "hello", snap: { conns: 0, rooms: [], ips: [] } });
  peer.seq += 3;
  peer.post({ t: "delta", delta: { conns: 0, rooms: [], ips: [], keys: [] } });
  assert.ok(await until(() => b.lost === 3));
  await a.pushRoom("live://1", BIZ, enc.encode("two"));
  assert.ok(await until(() => hubB.stream(stream).length === 2));
  const after = hubB.stream(stream)[1]!.stamp!;
  assert.equal(after.offset, 1);
  assert.notEqual(after.epoch, ownB!.epoch);
  peer.post({ t: "bye" });
});

Deno.test("a routed push with a reserved op is refused where it is taken", async () => {
  await using w = await FakeWorkers.start(2);
  const room = `live://${ownedBy(1, 2, (n) => roomStream(`live://${n}`))}`;
  await assert.rejects(() => w.clusters[0]!.pushRoom(room, 8, enc.encode("x")), RangeError);
});

Deno.test("real servers with owned streams: pushes reach clients on every worker through their owner", async () => {
  await using w = await Workers.start(3, {}, "owned");
  // serve() turns streams on at the bus (history on by default): each push goes through its owner.
  const clients = [];
  for (let i = 0; i < 3; i++) {
    clients.push(
      await w.tcp(i, { mid: 10 + i, key: `t${i}`, room_id: "live://all", accepts: [BIZ] }),
    );
  }
  assert.ok(await until(() => w.cluster(0).roomOnline("live://all") === 3));
  const paths = [
    `/goim/push/room?operation=${BIZ}&type=live&room=all`,
    `/goim/push/mids?operation=${BIZ}&mids=10&mids=11&mids=12`,
    `/goim/push/all?operation=${BIZ}`,
  ];
  for (const [n, path] of paths.entries()) {
    for (let i = 0; i < 3; i++) {
      const res = await api(w.servers[i]!, path, { method: "POST", body: `${n}.${i}` });
      assert.deepEqual(res.body, { code: 0, message: "", data: null });
    }
  }
  // Taken at a worker that does not own the room's stream: none delivered there at once.
  const owner = streamOwner(roomStream("live://all"), 3);
  for (let i = 0; i < 3; i++) {
    const result = await w.cluster(i).pushRoom("live://all", BIZ, enc.encode(`3.${i}`));
    assert.deepEqual(result, { local: i === owner ? 1 : 0, remote: 2, degraded: false });
  }
  for (const c of clients) {
    const got = [];
    for (let n = 0; n < 12; n++) got.push(await nextBiz(c));
    const want = [0, 1, 2, 3].flatMap((n) => [0, 1, 2].map((i) => `${n}.${i}`));
    assert.deepEqual(got.toSorted(), want);
    assert.ok(await c.silent(50), "each push once");
  }
});

Deno.test("real servers: a client resumes on another worker and gets what it missed, once, in order", async () => {
  await using w = await Workers.start(3, {}, "owned");
  const auth = (recover: Record<string, unknown>) =>
    JSON.stringify({ mid: 5, key: "roamer", room_id: "live://roam", accepts: [BIZ], recover });
  // Opted in on worker 0; the room's owner may be any worker.
  const first = await TestClient.connect(w.servers[0]!.addrs.tcp!.port);
  first.sendFrame(Op.Auth, auth({}));
  const hello = JSON.parse(text((await first.nextOp(Op.AuthReply)).body));
  const { epoch } = hello.streams.room;
  const pushRoom = (i: number, body: string) =>
    api(w.servers[i]!, `/goim/push/room?operation=${BIZ}&type=live&room=roam`, {
      method: "POST",
      body,
    });
  const offsets = async (c: TestClient, n: number) => {
    const out: string[] = [];
    while (out.length < n) {
      const p = decodeStreamPush((await c.nextOp(Op.StreamPush)).body);
      out.push(`${p.offset}:${text(p.body)}`);
    }
    return out;
  };
  // Through one worker, so that the API's order is the stream's (pushes entering
  // different workers have no order between them until their owner stamps them).
  for (const body of ["a", "b", "c"]) await pushRoom(2, body);
  assert.deepEqual(await offsets(first, 3), ["1:a", "2:b", "3:c"]);
  await first.close();
  assert.ok(await until(() => w.cluster(1).roomOnline("live://roam") === 0));
  await pushRoom(2, "d");
  await pushRoom(2, "e");
  // Back on worker 1, naming the place it holds.
  const back = await TestClient.connect(w.servers[1]!.addrs.tcp!.port);
  back.sendFrame(Op.Auth, auth({ room: { id: "live://roam", epoch, offset: 3 } }));
  const answer = JSON.parse(text((await back.nextOp(Op.AuthReply)).body));
  // A push routed to its owner may still be on its way: it then comes live, after the replay.
  const { offset, ...room } = answer.streams.room;
  assert.deepEqual(room, { id: "live://roam", epoch, recovered: true });
  assert.ok(offset >= 3 && offset <= 5, `offset ${offset}`);
  await pushRoom(2, "f");
  assert.deepEqual(await offsets(back, 3), ["4:d", "5:e", "6:f"]);
  assert.ok(await back.silent(100));
  await back.close();
});

Deno.test("an isolate's history reset keeps its eviction counters running and warns through the bus's logger", () => {
  const warnings: string[] = [];
  const logger: Logger = { ...silentLogger, warn: (message) => warnings.push(message) };
  const link = _loneLink(logger);
  // Each isolate orders its own streams (no `workers`), under a cap a few pushes fill.
  const streams = new BusStreams(link, { limits: { ...LIMITS, memory: 4_000 }, timeout: 1_000 });
  const kb = new Uint8Array(1000);
  for (let n = 0; n < 10; n++) streams.append(roomStream(`live://${n}`), BIZ, kb);
  const before = streams.figures().evictedPushes!;
  assert.ok(before > 0, "the cap evicted");
  assert.equal(warnings.length, 1);
  streams.reset();
  assert.equal(streams.figures().entries, 0, "the reset history starts empty");
  assert.equal(streams.figures().evictedPushes, before, "a counter never goes back");
  for (let n = 0; n < 10; n++) streams.append(roomStream(`live://${n}`), BIZ, kb);
  assert.ok(streams.figures().evictedPushes! > before);
  streams.close();
});
