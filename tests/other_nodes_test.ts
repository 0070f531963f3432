// The other nodes' last reports as one node of a Redis cluster keeps them: summed, and
// counted only while as fresh as the reports themselves live in Redis.
import assert from "node:assert/strict";
import type { NodeReport } from "../src/cluster/node_report.ts";
import { OtherNodes } from "../src/cluster/other_nodes.ts";

function report(id: string, connections: number, rooms: [string, number][]): NodeReport {
  return {
    id,
    host: "127.0.0.1",
    tcpPort: 3101,
    wsPort: 0,
    wssPort: 0,
    connections,
    ipCount: connections,
    updated: Date.now(),
    rooms: new Map(rooms),
  };
}

Deno.test("before any report the other nodes count nothing", () => {
  const others = new OtherNodes(1_000);
  assert.equal(others.fresh, false);
  assert.equal(others.live().size, 0);
  assert.equal(others.roomOnline("live://1"), 0);
  assert.equal(others.connections, 0);
  assert.equal(others.ipCount, 0);
});

Deno.test("reports from several nodes add up per room and in total", () => {
  const others = new OtherNodes(1_000);
  others.update(
    new Map([
      ["n2", report("n2", 3, [["live://1", 2], ["live://2", 1]])],
      ["n3", report("n3", 4, [["live://1", 4]])],
    ]),
  );
  assert.equal(others.fresh, true);
  assert.deepEqual([...others.live().keys()], ["n2", "n3"]);
  assert.equal(others.roomOnline("live://1"), 6);
  assert.equal(others.roomOnline("live://2"), 1);
  assert.equal(others.roomOnline("live://3"), 0);
  assert.deepEqual([...others.rooms()], [["live://1", 6], ["live://2", 1]]);
  assert.equal(others.connections, 7);
  assert.equal(others.ipCount, 7);
});

Deno.test("a newer read replaces the old one: a node missing from it no longer counts", () => {
  const others = new OtherNodes(1_000);
  others.update(new Map([["n2", report("n2", 3, [["r", 3]])]]));
  others.update(new Map([["n3", report("n3", 1, [["r", 1]])]]));
  assert.equal(others.roomOnline("r"), 1);
  assert.equal(others.live().has("n2"), false);
  assert.equal(others.last("n2"), undefined);
  assert.equal(others.last("n3")?.connections, 1);
});

Deno.test("after three intervals without a read the figures lapse, the last reports stay", async () => {
  const others = new OtherNodes(10);
  others.update(new Map([["n2", report("n2", 3, [["r", 3]])]]));
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(others.fresh, false);
  assert.equal(others.live().size, 0);
  assert.equal(others.roomOnline("r"), 0);
  assert.equal(others.rooms().size, 0);
  assert.equal(others.connections, 0);
  // What a node was last seen holding is still known, to clean up after it.
  assert.equal(others.last("n2")?.rooms.get("r"), 3);
});
