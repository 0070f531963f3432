// The report each node of a Redis cluster writes every interval: JSON that round-trips, and
// anything else read back as no report at all.
import assert from "node:assert/strict";
import { encodeReport, type NodeReport, parseReport } from "../src/cluster/node_report.ts";

const report: NodeReport = {
  id: "n1",
  host: "10.0.0.1",
  tcpPort: 3101,
  wsPort: 3102,
  wssPort: 0,
  connections: 5,
  ipCount: 3,
  updated: 1_700_000_000_000,
  version: "0.1.0",
  rooms: new Map([["live://1", 4], ["live://2", 1]]),
};

Deno.test("a report round-trips through its JSON", () => {
  const parsed = parseReport(encodeReport(report));
  assert.deepEqual(parsed, report);
});

Deno.test("rooms counted zero are left out when read back", () => {
  const parsed = parseReport(encodeReport({ ...report, rooms: new Map([["empty", 0]]) }));
  assert.equal(parsed?.rooms.size, 0);
});

Deno.test("junk, other shapes and bad counts read as no report", () => {
  const good = JSON.parse(encodeReport(report));
  for (
    const text of [
      "not json",
      "null",
      "[]",
      "42",
      JSON.stringify({ ...good, id: 7 }),
      JSON.stringify({ ...good, host: undefined }),
      JSON.stringify({ ...good, tcp: -1 }),
      JSON.stringify({ ...good, conns: 1.5 }),
      JSON.stringify({ ...good, ips: "3" }),
      JSON.stringify({ ...good, rooms: [] }),
      JSON.stringify({ ...good, rooms: null }),
      JSON.stringify({ ...good, rooms: { "live://1": -2 } }),
      JSON.stringify({ ...good, v: 1 }),
    ]
  ) {
    assert.equal(parseReport(text), undefined, text);
  }
});

Deno.test("a report from a node without a version still reads, with no version", () => {
  const { v, ...old } = JSON.parse(encodeReport(report));
  assert.equal(v, "0.1.0");
  const parsed = parseReport(JSON.stringify(old));
  assert.ok(parsed, "the old report reads");
  assert.equal(parsed.version, undefined);
  assert.equal(parsed.connections, report.connections);
  assert.equal(parsed.rooms.get("live://1"), 4);
});
