// One hub, one room, every transport at once: TCP, TLS, the WebSocket listener (plain and
// TLS), the createCometHandler in a Deno.serve (the edge path) and gtcp pkg. A room push
// reaches each member exactly once and nobody else.
import assert from "node:assert/strict";
import { text, until } from "./_helpers.ts";
import { Hub, NO_OP, type TransportClient, TRANSPORTS } from "./_transports.ts";

Deno.test("a room push reaches members on every transport exactly once, nobody else", async () => {
  await using hub = await Hub.start({}, ...TRANSPORTS);
  const handler = TRANSPORTS.find((t) => t.name === "handler")!;
  const members: TransportClient[] = [];
  const outsiders: TransportClient[] = [];
  for (const t of TRANSPORTS) {
    members.push(await hub.auth({ key: t.name, room_id: "live://mixed", accepts: [1000] }, t));
    // Watching op 1000 without being in the room is not membership.
    const room = t.name === "handler" ? {} : { room_id: "live://other" };
    outsiders.push(await hub.auth({ key: `${t.name}-out`, ...room, accepts: [1000] }, t));
  }
  const n = TRANSPORTS.length;
  assert.ok(await until(() => hub.comet.connections === 2 * n), "all authenticated");
  assert.deepEqual(
    TRANSPORTS.map((t) => hub.comet.channel(t.name)?.info.transport),
    TRANSPORTS.map((t) => t.transport),
  );

  const api = `http://127.0.0.1:${hub.served(handler).port}`;
  let res = await fetch(`${api}/goim/online/room?type=live&rooms=mixed&rooms=other`);
  assert.deepEqual((await res.json()).data, { mixed: n, other: n - 1 });
  res = await fetch(`${api}/goim/push/room?operation=1000&type=live&room=mixed`, {
    method: "POST",
    body: "to the mixed room",
  });
  assert.equal((await res.json()).code, 0);

  for (const [i, t] of TRANSPORTS.entries()) {
    const f = await members[i]!.next();
    assert.deepEqual(
      [f.op, f.seq, text(f.body)],
      [t.ops ? 1000 : NO_OP, 0, "to the mixed room"],
      t.name,
    );
  }
  // Exactly once: nothing more for the members, nothing at all for the others.
  const silences = await Promise.all([...members, ...outsiders].map((c) => c.silent(200)));
  assert.deepEqual(silences, silences.map(() => true));
  assert.equal(hub.comet.stats.deliveries, n);
});
