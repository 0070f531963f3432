// Slow WebSocket consumers on the standalone server: a raw client that stops reading fills
// its socket and then its queue; the slow policy closes it or drops its messages, while a
// reading client in the same room gets every push.
import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { body, indexOf, pushUntil, range, ROOM, stalledClient } from "./_backpressure.ts";
import { startServer, until } from "./_helpers.ts";
import { goimMessages, Opcode } from "./_ws_client.ts";

const utf8 = new TextEncoder();
/** Deno's WebSocket client, reading everything as it comes. */
class Reader implements AsyncDisposable {
  readonly ws: WebSocket;
  readonly indices: number[] = [];
  readonly closed: Promise<void>;
  readonly opened: Promise<void>;
  authed = false;

  constructor(port: number) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/sub`);
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("WebSocket failed"));
    });
    this.closed = new Promise((resolve) => (ws.onclose = () => resolve()));
    ws.onmessage = (e) => {
      for (const f of goimMessages(new Uint8Array(e.data as ArrayBuffer))) {
        if (f.op === Op.AuthReply) this.authed = true;
        else this.indices.push(indexOf(f));
      }
    };
  }

  static async auth(port: number): Promise<Reader> {
    const r = new Reader(port);
    await r.opened;
    r.ws.send(encodeFrame(Op.Auth, 1, utf8.encode(`{"key":"reader","room_id":"${ROOM}"}`)));
    assert.ok(await until(() => r.authed), "reader authenticated");
    return r;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close();
    await this.closed;
  }
}

Deno.test("a websocket client that stops reading is closed as slow; a reader gets everything", async () => {
  await using server = startServer({ queueSize: 4, slow: "close", closeGrace: 200 });
  await using reader = await Reader.auth(server.addrs.ws!.port);
  await using slow = await stalledClient(server.addrs.ws!.port, "slow");
  assert.equal(server.comet.roomOnline(ROOM), 2);

  // The slow client reads nothing from here on.
  const pushed = await pushUntil(
    server.comet,
    reader.indices,
    () => server.comet.stats.slowClosed === 1,
  );
  assert.ok(pushed > 4, `closed after ${pushed} pushes`);
  assert.deepEqual(reader.indices, range(pushed));

  // After the close grace it is gone from the hub...
  assert.ok(await until(() => server.comet.connections === 1), "slow client unregistered");
  assert.equal(server.comet.channel("slow"), undefined);
  assert.equal(server.comet.roomOnline(ROOM), 1);
  assert.equal(server.comet.stats.slowClosed, 1);
  assert.equal(server.comet.stats.dropped, 0);

  // ...and its socket ends: what it gets is some first pushes, in order, then the end.
  const got: number[] = [];
  for (let m = await slow.next(); m !== null; m = await slow.next()) {
    if (m.opcode === Opcode.Close) continue;
    assert.equal(m.opcode, Opcode.Binary);
    for (const f of goimMessages(m.payload)) {
      if (f.op === Op.DisconnectReply) continue;
      got.push(indexOf(f));
    }
  }
  assert.deepEqual(got, range(got.length));
  assert.ok(got.length < pushed, `slow client got ${got.length} of ${pushed}`);

  // The reader is unaffected.
  server.comet.pushRoom(ROOM, 1000, body(pushed));
  assert.ok(await until(() => reader.indices.length === pushed + 1));
  assert.deepEqual(reader.indices, range(pushed + 1));
});

Deno.test("with the drop policy a websocket client that stops reading loses pushes, a reader none", async () => {
  await using server = startServer({ queueSize: 4, slow: "drop" });
  await using reader = await Reader.auth(server.addrs.ws!.port);
  await using slow = await stalledClient(server.addrs.ws!.port, "slow");

  const pushed = await pushUntil(
    server.comet,
    reader.indices,
    () => server.comet.stats.dropped >= 3,
  );
  assert.deepEqual(reader.indices, range(pushed));
  const dropped = server.comet.stats.dropped;
  assert.equal(server.comet.stats.slowClosed, 0);
  assert.equal(server.comet.connections, 2, "the slow client stays connected");

  // Once it reads again, it gets every push that was not dropped, in order, then more.
  const got: number[] = [];
  const take = async () => {
    const m = await slow.next();
    assert.ok(m, "slow client still connected");
    assert.equal(m.opcode, Opcode.Binary);
    for (const f of goimMessages(m.payload)) got.push(indexOf(f));
  };
  const channel = server.comet.channel("slow")!;
  assert.equal(channel.queued, 4, "its queue is full");
  // Reading lets the blocked write finish and the writer take the queue.
  while (channel.queued > 0) await take();
  assert.equal(server.comet.pushRoom(ROOM, 1000, body(pushed)), 2, "room for one more push");
  assert.ok(await until(() => reader.indices.length === pushed + 1));
  while (got.at(-1) !== pushed) await take();
  assert.equal(got.length, pushed + 1 - dropped, `${dropped} dropped of ${pushed + 1}`);
  for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, "in order");
  assert.deepEqual(reader.indices, range(pushed + 1));
  assert.equal(server.comet.stats.dropped, dropped);
});
