// BusCluster: hubs in one isolate joined by a BroadcastChannel or a port mesh (see
// tests/_bus_workers.ts), with real clients over TCP and WebSocket and the push API of each.
import assert from "node:assert/strict";
import { BusCluster } from "../src/cluster/bus_cluster.ts";
import type { PresenceDelta } from "../src/cluster/bus_messages.ts";
import { PortMesh } from "../src/cluster/bus_port_mesh.ts";
import { PeerFigures } from "../src/cluster/bus_presence.ts";
import { ChannelTransport } from "../src/cluster/bus_transport.ts";
import { Op } from "../src/protocol/op.ts";
import { api, startServer, type TestClient, text, until } from "./_helpers.ts";
import type { TransportClient } from "./_transports.ts";
import {
  BIZ,
  type Bus,
  channelName,
  get,
  heartbeatOnline,
  nextBiz,
  RawPeer,
  Workers,
} from "./_bus_workers.ts";
import { VERSION } from "../src/version.ts";

async function everyPushKind(bus: Bus): Promise<void> {
  await using w = await Workers.start(3, {}, bus);
  const clients: (TestClient | TransportClient)[] = [];
  for (let i = 0; i < 3; i++) {
    const room = { room_id: "live://all", accepts: [BIZ] };
    clients.push(await w.tcp(i, { mid: 10 + i, key: `t${i}`, ...room }));
    clients.push(await w.websocket(i, { mid: 20 + i, key: `w${i}`, ...room }));
  }
  const keys = Array.from({ length: 3 }, (_, i) => `keys=t${i}&keys=w${i}`).join("&");
  const mids = Array.from({ length: 3 }, (_, i) => `mids=${10 + i}&mids=${20 + i}`).join("&");
  const paths = [
    `/goim/push/keys?operation=${BIZ}&${keys}`,
    `/goim/push/mids?operation=${BIZ}&${mids}`,
    `/goim/push/room?operation=${BIZ}&type=live&room=all`,
    `/goim/push/all?operation=${BIZ}`,
  ];
  for (const [n, path] of paths.entries()) {
    // Each push through another worker's API.
    const res = await api(w.servers[n % 3]!, path, { method: "POST", body: `push ${n}` });
    assert.deepEqual(res.body, { code: 0, message: "", data: null });
  }
  for (const c of clients) {
    const got = [];
    for (let n = 0; n < paths.length; n++) got.push(await nextBiz(c));
    // Through different workers: the order between them is not the test's business.
    assert.deepEqual(got.sort(), ["push 0", "push 1", "push 2", "push 3"]);
    assert.ok(await c.silent(50), "each push once");
  }
  const result = await w.cluster(1).pushRoom("live://all", BIZ, new Uint8Array([1]));
  assert.deepEqual(result, { local: 2, remote: 2, degraded: false });
  if (bus === "ports") { for (let i = 0; i < 3; i++) assert.equal(w.cluster(i).lost, 0); }
}

Deno.test("every push kind reaches TCP and WebSocket clients on every worker", async () => {
  await everyPushKind("channel");
});

Deno.test("over a port mesh, every push kind reaches TCP and WebSocket clients on every worker", async () => {
  await everyPushKind("ports");
});

Deno.test("a burst of pushes in one turn crosses as one message and loses none", async () => {
  await using w = await Workers.start(2, { queueSize: 2_048 });
  const c = await w.tcp(1, { mid: 1, key: "k", accepts: [BIZ] });
  const body = new Uint8Array(16);
  // Deno's BroadcastChannel drops what a Worker has not read past 256 messages: a listener
  // on the channel counts the messages that carry pushes.
  using listener = new RawPeer(w.channel, 99);
  let carried = 0;
  listener.channel.onmessage = (e) => {
    if ((e.data as { t: string }).t === "push") carried++;
  };
  const results = await Promise.all(
    Array.from({ length: 1_000 }, () => w.cluster(0).pushKeys(["k"], BIZ, body)),
  );
  assert.ok(results.every((r) => r.remote === 1));
  for (let i = 0; i < 1_000; i++) await c.nextOp(BIZ);
  assert.ok(await c.silent(50));
  assert.equal(w.cluster(1).lost, 0);
  assert.equal(carried, 1);
});

Deno.test("a received message of pushes is delivered once per push, not once per member", async () => {
  await using w = await Workers.start(1);
  const members = [
    await w.tcp(0, { mid: 1, key: "a", room_id: "live://9" }),
    await w.tcp(0, { mid: 2, key: "b", room_id: "live://9" }),
  ];
  const comet = w.servers[0]!.comet;
  const deliver = comet.deliver.bind(comet);
  const delivered: number[] = [];
  comet.deliver = (push) => {
    const n = deliver(push);
    delivered.push(n);
    return n;
  };
  using peer = new RawPeer(w.channel, 7);
  peer.post({ t: "hello", snap: { conns: 0, rooms: [], ips: [] } });
  const enc = new TextEncoder();
  const pushes = ["p0", "p1", "p2"].map((body) => ({
    kind: "room" as const,
    op: BIZ,
    room: "live://9",
    body: enc.encode(body),
  }));
  peer.post({ t: "push", pushes });
  for (const c of members) {
    for (const body of ["p0", "p1", "p2"]) assert.equal(await nextBiz(c), body);
  }
  assert.deepEqual(delivered, [2, 2, 2]);
  peer.post({ t: "bye" });
});

async function exactCounts(bus: Bus): Promise<void> {
  await using w = await Workers.start(2, {}, bus);
  const a = await w.tcp(0, { mid: 1, key: "a", room_id: "live://1", accepts: [BIZ] });
  await w.tcp(0, { mid: 2, key: "b", room_id: "live://2" });
  const c = await w.tcp(1, { mid: 3, key: "c", room_id: "live://1" });
  await w.websocket(1, { mid: 4, key: "d", room_id: "live://1" });
  await w.websocket(1, { mid: 5, key: "e" });
  const settled = (i: number, room: string, n: number) =>
    until(() => w.cluster(i).roomOnline(room) === n);
  assert.ok(await settled(0, "live://1", 3) && await settled(1, "live://1", 3));
  // The roomless fifth connection's delta may cross after the room figures settle.
  for (const i of [0, 1]) {
    assert.ok(await until(() => w.cluster(i).onlineTotal().connCount === 5));
  }
  for (const i of [0, 1]) {
    assert.deepEqual(await get(w, i, "/goim/online/room?type=live&rooms=1&rooms=2&rooms=3"), {
      1: 3,
      2: 1,
      3: 0,
    });
    assert.deepEqual(await get(w, i, "/goim/online/top?type=live&limit=5"), [
      { room_id: "1", count: 3 },
      { room_id: "2", count: 1 },
    ]);
    // Five connections from one address on two workers: one distinct IP.
    assert.deepEqual(await get(w, i, "/goim/online/total"), { ip_count: 1, conn_count: 5 });
  }
  assert.equal(await heartbeatOnline(a), 3);
  assert.equal(await heartbeatOnline(c), 3);

  // A move between rooms and a close on one worker; the other's figures follow.
  c.sendFrame(Op.ChangeRoom, "live://2");
  await c.nextOp(Op.ChangeRoomReply);
  assert.ok(await settled(0, "live://2", 2));
  assert.equal(await heartbeatOnline(a), 2);
  await a.close();
  assert.ok(await settled(1, "live://1", 1));
  assert.deepEqual(w.cluster(1).topRooms("live://", 5), [
    { room: "live://2", count: 2 },
    { room: "live://1", count: 1 },
  ]);
  assert.deepEqual(w.cluster(1).onlineTotal(), { ipCount: 1, connCount: 4 });
  assert.equal(w.cluster(0).roomCount(), 2);
  // op 12 to no room with others left is not heard as such; the sweep (once a second) is.
  await w.tcp(1, { mid: 6, key: "f", room_id: "live://2" });
  assert.ok(await settled(0, "live://2", 3));
  c.sendFrame(Op.ChangeRoom, "");
  await c.nextOp(Op.ChangeRoomReply);
  assert.ok(await settled(0, "live://2", 2));
}

Deno.test("online counts are exact sums across workers, in heartbeat replies too", async () => {
  await exactCounts("channel");
});

Deno.test("over a port mesh, online counts are exact sums, in heartbeat replies too", async () => {
  await exactCounts("ports");
});

Deno.test("a key opened on another worker replaces the older connection", async () => {
  await using w = await Workers.start(2);
  const old = await w.tcp(0, { mid: 1, key: "same", accepts: [BIZ] });
  const fresh = await w.tcp(1, { mid: 1, key: "same", accepts: [BIZ] });
  const bye = await old.nextOp(Op.DisconnectReply);
  assert.equal(text(bye.body), "replaced by a new connection with the same key");
  assert.ok(await old.closedByServer());
  assert.ok(await until(() => w.servers[0]!.comet.channel("same") === undefined));
  const res = await api(w.servers[0]!, `/goim/push/keys?operation=${BIZ}&keys=same`, {
    method: "POST",
    body: "once",
  });
  assert.equal(res.body.code, 0);
  assert.equal(await nextBiz(fresh), "once");
  assert.ok(await fresh.silent(50));
  assert.ok(await until(() => w.cluster(0).onlineTotal().connCount === 1));
});

Deno.test("a key claim keeps the newer opening: older claims close nothing", async () => {
  await using w = await Workers.start(1);
  using peer = new RawPeer(w.channel, 7);
  const empty = { conns: 0, rooms: [], ips: [] };
  peer.post({ t: "hello", snap: empty });
  const c = await w.tcp(0, { mid: 1, key: "k", accepts: [BIZ] });
  const delta = (at: number): PresenceDelta => ({
    conns: 1,
    rooms: [],
    ips: [],
    keys: [["k", at]],
  });
  peer.post({ t: "delta", delta: delta(0) });
  assert.ok(await c.silent(100), "an older claim leaves it open");
  assert.ok(w.servers[0]!.comet.channel("k") !== undefined);
  peer.post({ t: "delta", delta: delta(Date.now() + 1_000) });
  assert.ok(await c.closedByServer());
});

Deno.test("a worker that leaves takes its figures with it; a restarted one starts anew", async () => {
  await using w = await Workers.start(2);
  await w.tcp(0, { mid: 1, key: "a", room_id: "live://1" });
  await w.tcp(1, { mid: 2, key: "b", room_id: "live://1" });
  await w.tcp(1, { mid: 3, key: "c", room_id: "live://1" });
  assert.ok(await until(() => w.cluster(0).roomOnline("live://1") === 3));
  await w.cluster(1).close();
  assert.equal(w.cluster(1).state, "closed");
  assert.ok(await until(() => w.cluster(0).roomOnline("live://1") === 1));
  assert.deepEqual(w.cluster(0).onlineTotal(), { ipCount: 1, connCount: 1 });
  assert.equal(w.cluster(0).health().detail.workers, 1);

  using peer = new RawPeer(w.channel, 5, "first");
  peer.post({ t: "hello", snap: { conns: 3, rooms: [["live://1", 3]], ips: ["10.0.0.1"] } });
  assert.ok(await until(() => w.cluster(0).roomOnline("live://1") === 4));
  assert.deepEqual(w.cluster(0).onlineTotal(), { ipCount: 2, connCount: 4 });
  using again = new RawPeer(w.channel, 5, "second");
  again.post({ t: "hello", snap: { conns: 1, rooms: [["live://9", 1]], ips: [] } });
  assert.ok(await until(() => w.cluster(0).roomOnline("live://1") === 1));
  assert.equal(w.cluster(0).roomOnline("live://9"), 1);
  assert.deepEqual(w.cluster(0).onlineTotal(), { ipCount: 1, connCount: 2 });
});

Deno.test("gather waits for every worker and names a silent one after the timeout", async () => {
  await using w = await Workers.start(2);
  for (const i of [0, 1]) w.cluster(i).answer("n", () => i * 10);
  assert.deepEqual(await w.cluster(1).gather("n"), {
    replies: [{ workerId: 1, value: 10 }, { workerId: 0, value: 0 }],
    missing: [],
  });
  using silent = new RawPeer(w.channel, 9);
  silent.post({ t: "hello", snap: { conns: 0, rooms: [], ips: [] } });
  assert.ok(await until(() => w.cluster(0).health().detail.workers === 3));
  const started = performance.now();
  const got = await w.cluster(0).gather<number>("n", 150);
  assert.ok(performance.now() - started >= 140);
  assert.deepEqual(got, {
    replies: [{ workerId: 0, value: 0 }, { workerId: 1, value: 10 }],
    missing: [9],
  });
  silent.post({ t: "bye" });
  assert.ok(await until(() => w.cluster(0).health().detail.workers === 2));
  // A topic nobody answers comes back at once, everyone missing.
  const none = w.cluster(0).gather("none", 5_000);
  assert.deepEqual(await none, { replies: [], missing: [0, 1] });
});

Deno.test("/metrics, /admin and /goim/nodes answer for the whole process", async () => {
  await using w = await Workers.start(2);
  await w.tcp(0, { mid: 1, key: "a", room_id: "live://1" });
  await w.tcp(1, { mid: 2, key: "b", room_id: "live://1" });
  await w.websocket(1, { mid: 3, key: "c", room_id: "live://2" });
  assert.ok(await until(() => w.cluster(0).onlineTotal().connCount === 3));
  const res = await fetch(`http://127.0.0.1:${w.servers[0]!.addrs.api!.port}/metrics`);
  const metrics = await res.text();
  const sample = (line: string) => assert.ok(metrics.includes(`\n${line}\n`), line);
  sample('comet_connections{transport="tcp"} 2');
  sample('comet_connections{transport="ws"} 1');
  sample("comet_rooms 2");
  sample("comet_online_ips 1");
  sample("comet_auth_ok_total 3");
  sample("comet_workers 2");
  sample("comet_workers_missing 0");
  sample('comet_worker_connections{worker="0"} 1');
  sample('comet_worker_connections{worker="1"} 2');

  const stats = await get(w, 1, "/admin/stats") as { connectionsTotal: number; workers: unknown[] };
  assert.equal(stats.connectionsTotal, 3);
  assert.equal(stats.workers.length, 2);
  const nodes = await get(w, 1, "/goim/nodes/instances") as Record<string, unknown>[];
  assert.equal(nodes.length, 1);
  assert.equal(nodes[0]!.connections, 3);
  assert.equal(nodes[0]!.ip_count, 1);
  assert.equal(nodes[0]!.version, VERSION);
  const health = await get(w, 0, "/healthz") as Record<string, unknown>;
  assert.equal(health.connections, 3);
  assert.equal(health.workers, 2);
});

Deno.test("a gap in a peer's message numbers is counted and answered with a hello", async () => {
  await using w = await Workers.start(1);
  using peer = new RawPeer(w.channel, 4);
  const heard: string[] = [];
  peer.channel.onmessage = (e) => heard.push((e.data as { t: string }).t);
  peer.post({ t: "hello", snap: { conns: 2, rooms: [], ips: [] } });
  assert.ok(await until(() => heard.includes("snap")));
  peer.seq += 3;
  peer.post({ t: "delta", delta: { conns: 1, rooms: [], ips: [], keys: [] } });
  assert.ok(await until(() => w.cluster(0).lost === 3));
  assert.ok(await until(() => heard.includes("hello")), "asks everyone for their figures again");
  assert.equal(w.cluster(0).health().detail.bus_lost, 3);
  assert.equal(w.cluster(0).onlineTotal().connCount, 1);
  peer.post({ t: "bye" });
});

Deno.test("PeerFigures sums peers and counts an IP once however many workers hold it", () => {
  const peers = new PeerFigures();
  peers.ipAdded("10.0.0.1");
  peers.replace(1, "x", { conns: 2, rooms: [["r", 2]], ips: ["10.0.0.1", "10.0.0.2"] });
  peers.apply(2, "y", { conns: 1, rooms: [["r", 1]], ips: [["10.0.0.2", true]], keys: [] });
  assert.deepEqual([peers.roomOnline("r"), peers.connections, peers.ipCount], [3, 3, 2]);
  peers.apply(1, "x", { conns: 1, rooms: [["r", 1]], ips: [["10.0.0.1", false]], keys: [] });
  assert.deepEqual([peers.roomOnline("r"), peers.connections, peers.ipCount], [2, 2, 2]);
  assert.ok(peers.drop(2));
  assert.deepEqual([peers.roomOnline("r"), peers.connections, peers.ipCount], [1, 1, 2]);
  peers.ipRemoved("10.0.0.1");
  peers.clear();
  assert.deepEqual([peers.roomOnline("r"), peers.connections, peers.ipCount, peers.size], [
    0,
    0,
    0,
    0,
  ]);
});

Deno.test("BusCluster refuses bad options and a hub with another observer", async () => {
  assert.throws(() => new BusCluster({ workerId: -1 }), RangeError);
  assert.throws(() => new BusCluster({ workerId: 0, channel: "" }), TypeError);
  assert.throws(() => new BusCluster({ workerId: 0, nodeId: "" }), TypeError);
  assert.throws(() => new ChannelTransport(""), TypeError);
  const mesh = new PortMesh();
  assert.throws(() => new BusCluster({ workerId: 0, channel: "x", transport: mesh }), TypeError);
  await new BusCluster({ workerId: 0, transport: mesh }).close();
  await using server = startServer({ observer: {} });
  await using cluster = new BusCluster({ workerId: 0, channel: channelName() });
  assert.equal(cluster.state, "connecting");
  assert.throws(
    () => cluster.attach(server.comet, { host: "", tcpPort: 0, wsPort: 0, wssPort: 0 }),
    TypeError,
  );
  await assert.rejects(() => cluster.pushAll(BIZ, new Uint8Array(), { speed: -1 }), RangeError);
});
