// The push path with streams on (fan_out.ts): what a room push to opted-in members keeps and sends.
import assert from "node:assert/strict";
import { MemoryHistory } from "../src/server/memory_history.ts";
import { startServer, TestClient, text, until, utf8 } from "./_helpers.ts";
import { optIn, streamPush } from "./_streams.ts";

const ROOM = "live://1";
const body = (s: string) => utf8.encode(s);

Deno.test("a push that comes unstamped reaches opted-in members, settled ones too, as a plain push", async () => {
  // A Redis node's history stamps nothing itself: a push that reaches the hub unstamped goes out plain.
  const inner = new MemoryHistory({ size: 100, ttl: 60_000 });
  const history = {
    append: () => undefined,
    answer: (queries: Parameters<MemoryHistory["answer"]>[0]) => inner.answer(queries),
  };
  await using server = startServer({ history });
  const port = server.addrs.tcp!.port;
  const { client } = await optIn(port, { mid: 6, room_id: ROOM, accepts: [1000], recover: {} });
  await using c = client;
  const comet = server.comet;
  // The first moves the member to the room's op-18 log; an empty body makes a frame shorter than op 18's prefix.
  for (const s of ["u1", "", "u3"]) comet.pushRoom(ROOM, 1000, body(s));
  for (const s of ["u1", "", "u3"]) {
    const f = await c.next();
    assert.deepEqual([f.op, text(f.body)], [1000, s]);
  }
  assert.ok(await c.silent(50));
});

Deno.test("the server cap counts a room push's op-18 frame once per copy kept", async () => {
  const size = 100;
  const plain = 16 + size;
  const streamed = plain + 17;
  // Room for one plain frame and one op-18 frame: what a push to these two members keeps.
  await using server = startServer({ buckets: 1, backlog: { maxBytes: plain + streamed } });
  const port = server.addrs.tcp!.port;
  const { client } = await optIn(port, { mid: 1, room_id: ROOM, accepts: [1000], recover: {} });
  await using c = client;
  await using p = await TestClient.auth(port, { mid: 2, room_id: ROOM, accepts: [1000] });
  const comet = server.comet;
  const drained = () => comet.backlog.queueBytes + comet.backlog.roomBytes === 0;
  // The first reaches the opted-in member in its own queue, the second through the room's op-18 log.
  for (let i = 1; i <= 2; i++) {
    assert.equal(comet.pushRoom(ROOM, 1000, new Uint8Array(size)), 2, `push ${i}`);
    assert.equal(streamPush(await c.next()).offset, i);
    assert.equal((await p.next()).body.length, size);
    assert.ok(await until(drained));
  }
  assert.equal(comet.stats.pushesRefused.server, 0);
});
