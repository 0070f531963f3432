// The soak's raw client (bench/recovery_client.ts) must itself be right, or the
// soak reports the harness's faults as the server's.
import assert from "node:assert/strict";
import { StreamClient } from "../bench/recovery_client.ts";
import { startServer, until, utf8 } from "./_helpers.ts";

Deno.test("two reconnects at once leave the soak client one connection", async () => {
  // A cutter and a node's kill reconnecting one client to two nodes, as in the
  // soak: two connections left open would each deliver the room's pushes.
  await using a = startServer();
  await using b = startServer();
  const client = new StreamClient({ mid: 1, key: "k1", room: "live://1", checkBodies: true });
  try {
    await Promise.all([client.connect(a.addrs.tcp!.port), client.connect(b.addrs.tcp!.port)]);
    const open = () => a.comet.connections + b.comet.connections;
    await until(() => open() === 1);
    // Long enough for a second connection's auth to land, were there one.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(open(), 1);
    assert.equal(b.comet.connections, 1, "the later connect wins");
    for (let n = 1; n <= 3; n++) {
      b.comet.pushRoom("live://1", 1000, utf8.encode(`room:live://1#${n}`));
    }
    assert.ok(await until(() => client.tally.received === 3), `received ${client.tally.received}`);
    assert.deepEqual(
      { connects: client.tally.connects, duplicates: client.tally.duplicates },
      { connects: 2, duplicates: 0 },
    );
  } finally {
    await client.cut();
  }
});
