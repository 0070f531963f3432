// PortMesh, the lossless transport of the command's workers: MessagePorts between hubs in one
// isolate, as the supervisor hands them out (see tests/_bus_workers.ts).
import assert from "node:assert/strict";
import { BusCluster } from "../src/cluster/bus_cluster.ts";
import type { Outgoing } from "../src/cluster/bus_gather.ts";
import { PortMesh } from "../src/cluster/bus_port_mesh.ts";
import { api, type TestClient, until } from "./_helpers.ts";
import { BIZ, nextBiz, Workers } from "./_bus_workers.ts";

Deno.test("over a port mesh, 2,000 pushes in 2,000 turns arrive whole and in order, none lost", async () => {
  await using w = await Workers.start(3, { queueSize: 4_096 }, "ports");
  const clients: TestClient[] = [];
  for (let i = 0; i < 3; i++) {
    clients.push(await w.tcp(i, { mid: i + 1, key: `k${i}`, room_id: "live://b", accepts: [BIZ] }));
  }
  assert.ok(await until(() => w.cluster(0).roomOnline("live://b") === 3));
  const push = [
    (body: Uint8Array) => w.cluster(0).pushKeys(["k0", "k1", "k2"], BIZ, body),
    (body: Uint8Array) => w.cluster(0).pushMids([1, 2, 3], BIZ, body),
    (body: Uint8Array) => w.cluster(0).pushRoom("live://b", BIZ, body),
    (body: Uint8Array) => w.cluster(0).pushAll(BIZ, body),
  ];
  const encoder = new TextEncoder();
  for (let n = 0; n < 2_000; n++) {
    const result = await push[n % 4]!(encoder.encode(String(n)));
    assert.deepEqual(result, { local: 1, remote: 2, degraded: false });
    // A macrotask: the bus posts each push in a message of its own.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  for (const [i, c] of clients.entries()) {
    for (let n = 0; n < 2_000; n++) assert.equal(await nextBiz(c), String(n), `client ${i}`);
    assert.ok(await c.silent(50), "each push once");
  }
  for (let i = 0; i < 3; i++) {
    assert.equal(w.cluster(i).lost, 0);
    assert.equal(w.cluster(i).health().detail.bus_lost, 0);
  }
});

// Between Workers, Deno's BroadcastChannel drops the oldest messages a receiver has left unread
// past 256; within one isolate it delivered this whole burst when tried, so only the mesh is
// under test here.
Deno.test("over a port mesh, 2,000 bus messages posted in one turn arrive in order, none lost", async () => {
  await using w = await Workers.start(1, { queueSize: 4_096 }, "ports");
  const c = await w.tcp(0, { mid: 1, key: "k", accepts: [BIZ] });
  const snap = { conns: 0, rooms: [], ips: [] };
  const burst = (post: (m: Outgoing) => void) => {
    post({ t: "hello", snap });
    for (let n = 0; n < 2_000; n++) {
      const body = new TextEncoder().encode(String(n));
      post({ t: "push", pushes: [{ kind: "keys", op: BIZ, keys: ["k"], body }] });
    }
    post({ t: "bye" });
  };
  const { port1, port2 } = new MessageChannel();
  w.meshes[0]!.connect(7, port2);
  let s = 0;
  burst((m) => port1.postMessage({ ...m, w: 7, i: "raw", s: ++s }));
  for (let n = 0; n < 2_000; n++) assert.equal(await nextBiz(c), String(n));
  assert.equal(w.cluster(0).lost, 0);
  port1.close();
});

Deno.test("over a port mesh, a dead hub's figures go at once and a restarted one rejoins", async () => {
  await using w = await Workers.start(3, {}, "ports");
  const room = { room_id: "live://1", accepts: [BIZ] };
  const a = await w.tcp(0, { mid: 1, key: "a", ...room });
  const b = await w.tcp(1, { mid: 2, key: "b", ...room });
  await w.tcp(2, { mid: 3, key: "c", ...room });
  await w.tcp(2, { mid: 4, key: "d", ...room });
  assert.ok(await until(() => [0, 1].every((i) => w.cluster(i).roomOnline("live://1") === 4)));
  for (const i of [0, 1]) w.cluster(i).answer("n", () => i);

  await w.kill(2);
  // The mesh says so: no wait for a bye or a timeout.
  for (const i of [0, 1]) {
    assert.equal(w.cluster(i).roomOnline("live://1"), 2);
    assert.deepEqual(w.cluster(i).onlineTotal(), { ipCount: 1, connCount: 2 });
    assert.equal(w.cluster(i).health().detail.workers, 2);
  }
  assert.deepEqual(await w.cluster(0).gather("n", 5_000), {
    replies: [{ workerId: 0, value: 0 }, { workerId: 1, value: 1 }],
    missing: [],
  });

  await w.add(2);
  assert.deepEqual(w.meshes.map((m) => m.peers), [[1, 2], [0, 2], [0, 1]]);
  const c = await w.tcp(2, { mid: 5, key: "e", ...room });
  assert.ok(await until(() => [0, 1, 2].every((i) => w.cluster(i).roomOnline("live://1") === 3)));
  assert.deepEqual(w.cluster(2).onlineTotal(), { ipCount: 1, connCount: 3 });
  for (const from of [0, 2]) {
    const res = await api(w.servers[from]!, `/goim/push/room?operation=${BIZ}&type=live&room=1`, {
      method: "POST",
      body: `from ${from}`,
    });
    assert.equal(res.body.code, 0);
  }
  for (const client of [a, b, c]) {
    assert.deepEqual([await nextBiz(client), await nextBiz(client)].sort(), ["from 0", "from 2"]);
  }
  for (let i = 0; i < 3; i++) assert.equal(w.cluster(i).lost, 0);
});

Deno.test("a mesh takes one listener and closes what it is handed once closed", async () => {
  const mesh = new PortMesh();
  const bus = new BusCluster({ workerId: 0, transport: mesh });
  assert.throws(() => new BusCluster({ workerId: 1, transport: mesh }), TypeError, "one listener");
  await bus.close();
  const { port1, port2 } = new MessageChannel();
  assert.throws(() => mesh.connect(-1, port1), RangeError);
  mesh.connect(1, port1);
  assert.deepEqual(mesh.peers, [], "a closed mesh closes what it is handed");
  port2.close();
});

Deno.test("a port mesh sends to one worker alone, in order with what it posted to all", async () => {
  const [a, b, c] = [new PortMesh(), new PortMesh(), new PortMesh()];
  const ab = new MessageChannel();
  const ac = new MessageChannel();
  a.connect(1, ab.port1);
  b.connect(0, ab.port2);
  a.connect(2, ac.port1);
  c.connect(0, ac.port2);
  const heard: unknown[][] = [[], []];
  b.listen({ message: (m) => heard[0]!.push(m), gone: () => {} });
  c.listen({ message: (m) => heard[1]!.push(m), gone: () => {} });
  a.post("all 1");
  assert.equal(a.postTo(1, "b only"), true);
  a.post("all 2");
  assert.equal(a.postTo(5, "nobody"), false);
  assert.ok(await until(() => heard[0]!.length === 3 && heard[1]!.length === 2));
  assert.deepEqual(heard, [["all 1", "b only", "all 2"], ["all 1", "all 2"]]);
  a.disconnect(1);
  assert.equal(a.postTo(1, "gone"), false);
  for (const mesh of [a, b, c]) mesh.close();
});
