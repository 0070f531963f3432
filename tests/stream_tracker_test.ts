// The client SDK's stream recovery (src/client/stream_tracker.ts) against the
// real server: cut, pushes while away, reconnect with backoff, nothing lost.
import assert from "node:assert/strict";
import { Client, type ClientFrame, openLink, type StreamLost } from "../mod.ts";
import { startServer, text, until, utf8 } from "./_helpers.ts";

const BIZ = 1000;
const ROOM = "live://sdk";

function _client(port: number, mid: number): Client {
  return new Client(`tcp://127.0.0.1:${port}`, {
    mid,
    key: `sdk-${mid}`,
    roomId: ROOM,
    accepts: [BIZ],
    reconnect: { initialDelay: 50, maxDelay: 100, jitter: 0 },
    link: openLink,
  });
}

/** Cuts the client's connection from the server's side, as a dropped network would. */
function _cut(server: ReturnType<typeof startServer>, key: string): void {
  const ch = server.comet.channel(key);
  assert.ok(ch !== undefined, `no connection ${key}`);
  ch.close("cut by the test");
}

Deno.test("the SDK resumes its room and user streams after a cut: every push once, in order", async () => {
  await using server = startServer();
  const port = server.addrs.tcp!.port;
  await using client = _client(port, 7);
  const got: string[] = [];
  const lost: StreamLost[] = [];
  client.on(BIZ, (f: ClientFrame) => got.push(`${f.stream?.kind}:${text(f.body)}`));
  client.onStreamLost((l) => lost.push(l));
  await client.opened;
  const push = (n: number) => {
    server.comet.pushRoom(ROOM, BIZ, utf8.encode(`r${n}`));
    server.comet.pushMids([7], BIZ, utf8.encode(`m${n}`));
  };
  push(1);
  assert.ok(await until(() => got.length === 2));
  _cut(server, "sdk-7");
  assert.ok(await until(() => server.comet.channel("sdk-7") === undefined));
  // Sent while the client is away: the server keeps them for it.
  push(2);
  push(3);
  assert.ok(await until(() => got.length === 6, 5_000), got.join(","));
  push(4);
  assert.ok(await until(() => got.length === 8));
  assert.deepEqual(got, [
    "room:r1",
    "mid:m1",
    "room:r2",
    "room:r3",
    "mid:m2",
    "mid:m3",
    "room:r4",
    "mid:m4",
  ]);
  assert.deepEqual(lost, []);
  assert.equal(client.positions.room?.offset, 4);
  assert.equal(client.positions.mid?.offset, 4);
  assert.equal(server.comet.stats.recoveries.recovered, 3);
});

Deno.test("the SDK tells the application when what it missed is no longer kept", async () => {
  await using server = startServer({ historySize: 2 });
  const port = server.addrs.tcp!.port;
  await using client = _client(port, 8);
  const got: string[] = [];
  const lost: StreamLost[] = [];
  client.on(BIZ, (f: ClientFrame) => got.push(text(f.body)));
  client.onStreamLost((l) => lost.push(l));
  await client.opened;
  _cut(server, "sdk-8");
  assert.ok(await until(() => server.comet.channel("sdk-8") === undefined));
  for (let n = 1; n <= 5; n++) server.comet.pushRoom(ROOM, BIZ, utf8.encode(`r${n}`));
  assert.ok(await until(() => lost.length === 1, 5_000));
  assert.deepEqual(lost, [{ stream: "room", id: ROOM, reason: "window" }]);
  // Nothing old arrives, not even the two pushes still kept: a replay is whole or nothing.
  server.comet.pushRoom(ROOM, BIZ, utf8.encode("r6"));
  assert.ok(await until(() => got.length === 1));
  assert.deepEqual(got, ["r6"]);
  assert.equal(client.positions.room?.offset, 6);
});

Deno.test("a move the server makes is a new room for the SDK, not a lost stream", async () => {
  await using server = startServer();
  await using client = _client(server.addrs.tcp!.port, 9);
  const got: string[] = [];
  const lost: StreamLost[] = [];
  client.on(
    BIZ,
    (f: ClientFrame) => got.push(`${f.stream?.kind}:${f.stream?.offset}:${text(f.body)}`),
  );
  client.onStreamLost((l) => lost.push(l));
  await client.opened;
  server.comet.pushRoom(ROOM, BIZ, utf8.encode("old"));
  server.comet.pushRoom("live://other", BIZ, utf8.encode("x"));
  server.comet.pushRoom("live://other", BIZ, utf8.encode("y"));
  assert.ok(await until(() => got.length === 1));
  server.comet.changeRoom(server.comet.channel("sdk-9")!, "live://other");
  assert.ok(await until(() => client.positions.room?.id === "live://other"));
  server.comet.pushRoom("live://other", BIZ, utf8.encode("new"));
  assert.ok(await until(() => got.length === 2));
  assert.deepEqual(got, ["room:1:old", "room:3:new"]);
  assert.deepEqual(lost, []);
  assert.equal(client.stats.lateReplies, 0);
});

Deno.test("after a move the server made, a reconnect resumes the new room without a loss", async () => {
  await using server = startServer();
  await using client = _client(server.addrs.tcp!.port, 10);
  const got: string[] = [];
  const lost: StreamLost[] = [];
  client.on(BIZ, (f: ClientFrame) => got.push(text(f.body)));
  client.onStreamLost((l) => lost.push(l));
  await client.opened;
  server.comet.changeRoom(server.comet.channel("sdk-10")!, "live://moved");
  assert.ok(await until(() => client.positions.room?.id === "live://moved"));
  server.comet.pushRoom("live://moved", BIZ, utf8.encode("before"));
  assert.ok(await until(() => got.length === 1));
  _cut(server, "sdk-10");
  assert.ok(await until(() => server.comet.channel("sdk-10") === undefined));
  server.comet.pushRoom("live://moved", BIZ, utf8.encode("away"));
  server.comet.pushRoom(ROOM, BIZ, utf8.encode("old room"));
  assert.ok(await until(() => got.length === 2, 5_000), got.join(","));
  server.comet.pushRoom("live://moved", BIZ, utf8.encode("after"));
  assert.ok(await until(() => got.length === 3));
  assert.deepEqual(got, ["before", "away", "after"]);
  assert.deepEqual(lost, []);
  assert.equal(client.positions.room?.id, "live://moved");
});
