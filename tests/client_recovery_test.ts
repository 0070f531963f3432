// The goim client's stream recovery (docs/protocol.md, section 8.6) against a scripted server.
import assert from "node:assert/strict";
import {
  Client,
  type ClientFrame,
  connect,
  Op,
  openLink,
  ProtocolError,
  type StreamLost,
} from "../mod.ts";
import { FrameDecoder } from "../src/protocol/decoder.ts";
import { encodeFrame } from "../src/protocol/frame.ts";
import { encodeStreamPush, StreamKind } from "../src/protocol/stream_push.ts";
import { text, until, utf8 } from "./_helpers.ts";

interface Script {
  /** Op 8's body for connection `n` (1 first), and frames to write right behind it, in one write. */
  auth(n: number, body: string): { reply: string; after?: Uint8Array[] };
  /** Op 13's body for a move to `room`. */
  changeRoom?(room: string): string;
}

/** A goim server on loopback that answers as the test scripts and records what clients send. */
class ScriptedServer implements AsyncDisposable {
  /** Each op-7 body, as text. */
  readonly auths: string[] = [];
  /** The ops each connection sent, by connection. */
  readonly ops: number[][] = [];
  #conns: Deno.Conn[] = [];
  #sessions: Promise<void>[] = [];
  #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  #accepting: Promise<void>;

  constructor(script: Script) {
    this.#accepting = (async () => {
      try {
        for await (const conn of this.#listener) {
          this.#conns.push(conn);
          this.ops.push([]);
          this.#sessions.push(this.#serve(conn, this.#conns.length, script));
        }
      } catch {
        // The listener was closed.
      }
    })();
  }

  get url(): string {
    return `tcp://127.0.0.1:${this.#listener.addr.port}`;
  }

  /** Writes `frames` to the newest connection in one write. */
  async send(...frames: Uint8Array[]): Promise<void> {
    await _writeAll(this.#conns.at(-1)!, frames);
  }

  /** Closes the newest connection, as a server that went away. */
  drop(): void {
    this.#conns.at(-1)!.close();
  }

  async #serve(conn: Deno.Conn, n: number, script: Script): Promise<void> {
    const decoder = new FrameDecoder();
    const buf = new Uint8Array(4096);
    try {
      for (let got = await conn.read(buf); got !== null; got = await conn.read(buf)) {
        for (const { op, seq, body } of decoder.decode(buf.subarray(0, got))) {
          this.ops[n - 1]!.push(op);
          if (op === Op.Auth) {
            this.auths.push(text(body));
            const { reply, after = [] } = script.auth(n, text(body));
            await _writeAll(conn, [encodeFrame(Op.AuthReply, seq, utf8.encode(reply)), ...after]);
          } else if (op === Op.Heartbeat) {
            await _writeAll(conn, [encodeFrame(Op.HeartbeatReply, seq, new Uint8Array(4))]);
          } else if (op === Op.ChangeRoom) {
            const answer = script.changeRoom?.(text(body)) ?? text(body);
            await _writeAll(conn, [encodeFrame(Op.ChangeRoomReply, seq, utf8.encode(answer))]);
          } else {
            await _writeAll(conn, [encodeFrame(op + 1, seq, body)]);
          }
        }
      }
    } catch {
      // Closed by the test, the client or the end of the test.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await Promise.all(this.#sessions);
  }
}

async function _writeAll(conn: Deno.Conn, frames: Uint8Array[]): Promise<void> {
  const bytes = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const frame of frames) {
    bytes.set(frame, at);
    at += frame.length;
  }
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}

const GOIM = { mid: 7, key: "k7", roomId: "live://1", platform: "web", accepts: [1000] };
const FAST = { initialDelay: 10, maxDelay: 50 };
const ROOM = StreamKind.Room;
const MID = StreamKind.Mid;
const ALL = StreamKind.All;

/** An op-18 frame of business op 1000 whose body is `body`. */
const push = (kind: 1 | 2 | 3, epoch: number, offset: number, body: string, op = 1000) =>
  encodeStreamPush(kind, epoch, offset, op, utf8.encode(body));

/** Op 8's body naming `streams`. */
const welcome = (streams: object) => JSON.stringify({ streams });

const FIRST = welcome({
  room: { id: "live://1", epoch: 5, offset: 10 },
  mid: { epoch: 6, offset: 0 },
  all: { epoch: 7, offset: 3 },
});

interface Seen {
  op: number;
  body: string;
  stream?: ClientFrame["stream"];
}

/** Records every frame of ops 1000 and 1001 the client delivers. */
function record(client: Client): Seen[] {
  const seen: Seen[] = [];
  const keep = (frame: ClientFrame) => {
    const { op, body, stream } = frame;
    seen.push(stream === undefined ? { op, body: text(body) } : { op, body: text(body), stream });
  };
  client.on(1000, keep);
  client.on(1001, keep);
  return seen;
}

Deno.test("the first connection asks with an empty recover and positions follow op 18", async () => {
  await using server = new ScriptedServer({ auth: () => ({ reply: FIRST }) });
  await using client = await connect(server.url, GOIM);
  const seen = record(client);
  const json = client.jsonMessages<string>();
  // The generator registers its stream on the first next().
  const firstJson = json.next();
  assert.deepEqual(JSON.parse(server.auths[0]!), {
    mid: 7,
    key: "k7",
    room_id: "live://1",
    platform: "web",
    accepts: [1000],
    recover: {},
  });
  assert.deepEqual(client.positions, {
    room: { id: "live://1", epoch: 5, offset: 10 },
    mid: { epoch: 6, offset: 0 },
    all: { epoch: 7, offset: 3 },
  });

  await server.send(push(ROOM, 5, 11, '"to the room"'), push(MID, 6, 1, '"to me"', 1001));
  assert.ok(await until(() => seen.length === 2), "both pushes delivered");
  assert.deepEqual(seen, [
    { op: 1000, body: '"to the room"', stream: { kind: "room", epoch: 5, offset: 11 } },
    { op: 1001, body: '"to me"', stream: { kind: "mid", epoch: 6, offset: 1 } },
  ]);
  assert.deepEqual((await firstJson).value, {
    op: 1000,
    value: "to the room",
    stream: { kind: "room", epoch: 5, offset: 11 },
  });
  await json.return();
  assert.deepEqual(client.positions, {
    room: { id: "live://1", epoch: 5, offset: 11 },
    mid: { epoch: 6, offset: 1 },
    all: { epoch: 7, offset: 3 },
  });
});

Deno.test("after a drop the client reconnects naming its positions and replayed pushes reach handlers", async () => {
  const replay = [push(ROOM, 5, 12, "missed 12"), push(ROOM, 5, 13, "missed 13")];
  await using server = new ScriptedServer({
    auth: (n) =>
      n === 1 ? { reply: FIRST } : {
        reply: welcome({
          room: { id: "live://1", epoch: 5, offset: 13, recovered: true },
          mid: { epoch: 6, offset: 1, recovered: true },
          all: { epoch: 7, offset: 3, recovered: true },
        }),
        after: replay,
      },
  });
  await using client = await connect(server.url, { ...GOIM, reconnect: FAST });
  const seen = record(client);
  const lost: StreamLost[] = [];
  client.onStreamLost((event) => lost.push(event));
  await server.send(push(ROOM, 5, 11, "live 11"), push(MID, 6, 1, "mine", 1001));
  assert.ok(await until(() => seen.length === 2), "live pushes delivered");

  server.drop();
  assert.ok(await until(() => client.stats.reconnects === 1), "client reconnected");
  assert.ok(await until(() => seen.length === 4), "replayed pushes delivered");
  assert.deepEqual(JSON.parse(server.auths[1]!).recover, {
    room: { id: "live://1", epoch: 5, offset: 11 },
    mid: { epoch: 6, offset: 1 },
    all: { epoch: 7, offset: 3 },
  });
  assert.deepEqual(seen.slice(2), [
    { op: 1000, body: "missed 12", stream: { kind: "room", epoch: 5, offset: 12 } },
    { op: 1000, body: "missed 13", stream: { kind: "room", epoch: 5, offset: 13 } },
  ]);
  assert.deepEqual(client.positions.room, { id: "live://1", epoch: 5, offset: 13 });
  assert.deepEqual(lost, []);
  // The auth put the client back in its room: it sends no ChangeRoom.
  assert.equal(server.ops[1]!.includes(Op.ChangeRoom), false);
});

Deno.test("a stream the server could not recover reaches the application with the reason", async () => {
  await using server = new ScriptedServer({
    auth: (n) => ({
      reply: n === 1 ? FIRST : welcome({
        room: { id: "live://1", epoch: 50, offset: 4, recovered: false, reason: "epoch" },
        mid: { epoch: 6, offset: 30, recovered: false, reason: "window" },
        all: { epoch: 7, offset: 3, recovered: true },
      }),
    }),
  });
  await using client = await connect(server.url, { ...GOIM, reconnect: FAST });
  const lost: StreamLost[] = [];
  client.onStreamLost((event) => lost.push(event));
  server.drop();
  assert.ok(await until(() => client.stats.reconnects === 1), "client reconnected");
  assert.deepEqual(lost, [
    { stream: "room", id: "live://1", reason: "epoch" },
    { stream: "mid", reason: "window" },
  ]);
  assert.deepEqual(client.positions, {
    room: { id: "live://1", epoch: 50, offset: 4 },
    mid: { epoch: 6, offset: 30 },
    all: { epoch: 7, offset: 3 },
  });
});

Deno.test("a new epoch or a skipped offset seen live is delivered and reported", async () => {
  await using server = new ScriptedServer({ auth: () => ({ reply: FIRST }) });
  await using client = await connect(server.url, GOIM);
  const seen = record(client);
  const lost: StreamLost[] = [];
  client.onStreamLost((event) => lost.push(event));
  await server.send(push(ALL, 7, 6, "skipped 4 and 5"), push(ROOM, 99, 1, "new epoch"));
  assert.ok(await until(() => seen.length === 2), "both delivered");
  assert.deepEqual(lost, [
    { stream: "all", reason: "gap" },
    { stream: "room", id: "live://1", reason: "epoch" },
  ]);
  assert.deepEqual(seen.map((s) => s.body), ["skipped 4 and 5", "new epoch"]);
  assert.deepEqual(client.positions.all, { epoch: 7, offset: 6 });
  assert.deepEqual(client.positions.room, { id: "live://1", epoch: 99, offset: 1 });
});

Deno.test("a push at or below the offset held is dropped", async () => {
  await using server = new ScriptedServer({ auth: () => ({ reply: FIRST }) });
  await using client = await connect(server.url, GOIM);
  const seen = record(client);
  const lost: StreamLost[] = [];
  client.onStreamLost((event) => lost.push(event));
  await server.send(
    push(ALL, 7, 4, "first"),
    push(ALL, 7, 4, "again"),
    push(ALL, 7, 2, "old"),
    push(ALL, 7, 5, "next"),
  );
  assert.ok(await until(() => seen.length >= 2), "pushes delivered");
  await server.send(encodeFrame(1001, 0, utf8.encode("marker")));
  assert.ok(await until(() => seen.at(-1)?.body === "marker"), "marker delivered");
  assert.deepEqual(seen.map((s) => s.body), ["first", "next", "marker"]);
  assert.deepEqual(lost, []);
  assert.deepEqual(client.positions.all, { epoch: 7, offset: 5 });
});

Deno.test("recover false sends goim's plain auth JSON and leaves op 18 alone", async () => {
  await using server = new ScriptedServer({ auth: () => ({ reply: "" }) });
  await using client = await connect(server.url, { ...GOIM, recover: false });
  assert.equal(
    server.auths[0],
    '{"mid":7,"key":"k7","room_id":"live://1","platform":"web","accepts":[1000]}',
  );
  const raw: ClientFrame[] = [];
  client.on(Op.StreamPush, (frame) => raw.push(frame));
  await server.send(push(ALL, 7, 4, "x"));
  assert.ok(await until(() => raw.length === 1), "op 18 delivered as it came");
  assert.equal(raw[0]!.stream, undefined);
  assert.deepEqual(client.positions, {});
});

Deno.test("plain key pushes still arrive alongside stream pushes, batched or not", async () => {
  await using server = new ScriptedServer({ auth: () => ({ reply: FIRST }) });
  await using client = await connect(server.url, GOIM);
  const seen = record(client);
  const batch = new Uint8Array([
    ...push(MID, 6, 2, "batched stream"),
    ...encodeFrame(1001, 0, utf8.encode("batched key")),
  ]);
  await server.send(
    encodeFrame(1001, 0, utf8.encode("key")),
    push(MID, 6, 1, "stream"),
    encodeFrame(Op.Raw, 0, batch),
  );
  assert.ok(await until(() => seen.length === 4), "all delivered");
  assert.deepEqual(seen, [
    { op: 1001, body: "key" },
    { op: 1000, body: "stream", stream: { kind: "mid", epoch: 6, offset: 1 } },
    { op: 1000, body: "batched stream", stream: { kind: "mid", epoch: 6, offset: 2 } },
    { op: 1001, body: "batched key" },
  ]);
});

Deno.test("a raw auth body gets recover only when it is a JSON object without one", async () => {
  await using server = new ScriptedServer({ auth: () => ({ reply: welcome({}) }) });
  const bodies: [auth: string | object, sent: string][] = [
    [
      '{"token":"t", "n": 12345678901234567890 }',
      '{"token":"t", "n": 12345678901234567890 ,"recover":{}}',
    ],
    ["{}", '{"recover":{}}'],
    ["let-me-in", "let-me-in"],
    ["[1,2]", "[1,2]"],
    ['{"recover":{"all":{"epoch":1,"offset":2}}}', '{"recover":{"all":{"epoch":1,"offset":2}}}'],
    [{ token: "t" }, '{"token":"t","recover":{}}'],
  ];
  for (const [auth, sent] of bodies) {
    const client = await connect(server.url, { auth });
    await client.close();
    assert.equal(server.auths.at(-1), sent);
  }
  const plain = await connect(server.url, { auth: { token: "t" }, recover: false });
  await plain.close();
  assert.equal(server.auths.at(-1), '{"token":"t"}');
});

Deno.test("initial positions are asked for, and a room change takes op 13's position", async () => {
  await using server = new ScriptedServer({
    auth: (n, body) => {
      const room = JSON.parse(body).room_id;
      return {
        reply: n === 1 ? FIRST : welcome({
          room: { id: room, epoch: 20, offset: 8, recovered: true },
          mid: { epoch: 6, offset: 0, recovered: true },
          all: { epoch: 7, offset: 3, recovered: true },
        }),
      };
    },
    changeRoom: (room) =>
      JSON.stringify(room === "" ? { id: "" } : { id: room, epoch: 20, offset: 8 }),
  });
  const positions = { room: { id: "live://1", epoch: 5, offset: 2 }, all: { epoch: 7, offset: 1 } };
  await using client = await connect(server.url, { ...GOIM, positions, reconnect: FAST });
  assert.deepEqual(JSON.parse(server.auths[0]!).recover, positions);

  await client.changeRoom("live://2");
  assert.deepEqual(client.positions.room, { id: "live://2", epoch: 20, offset: 8 });
  server.drop();
  assert.ok(await until(() => client.stats.reconnects === 1), "client reconnected");
  const again = JSON.parse(server.auths[1]!);
  assert.equal(again.room_id, "live://2");
  assert.deepEqual(again.recover.room, { id: "live://2", epoch: 20, offset: 8 });
  assert.equal(server.ops[1]!.includes(Op.ChangeRoom), false);

  await client.changeRoom("");
  assert.equal(client.positions.room, undefined);
});

Deno.test("positions in the options are checked", () => {
  const url = "ws://127.0.0.1:1/sub";
  const bad = [
    [{ all: { epoch: -1, offset: 0 } }, RangeError],
    [{ mid: { epoch: 1, offset: 1.5 } }, RangeError],
    [{ all: { epoch: 2 ** 32, offset: 0 } }, RangeError],
    [{ room: { epoch: 1, offset: 1 } }, TypeError],
  ] as const;
  for (const [positions, type] of bad) {
    assert.throws(() => new Client(url, { positions: positions as never }), type);
  }
  const shapes = [
    [null, /^Positions must be an object: null$/],
    [{ mid: null }, /^Position of mid must be an object: null$/],
    [{ all: { epoch: "1", offset: 0 } }, /^Epoch of all must be a number: string$/],
    [{ mid: { epoch: 1 } }, /^Offset of mid must be a number: undefined$/],
  ] as const;
  for (const [positions, message] of shapes) {
    assert.throws(() => new Client(url, { positions: positions as never }), {
      name: "TypeError",
      message,
    });
  }
  assert.throws(() => new Client(url, { recover: "yes" as never }), /Recover must be a boolean/);
});

Deno.test("a connection lost mid-replay asks again from the last push it replayed", async () => {
  await using server = new ScriptedServer({
    auth: (n) =>
      n === 1 ? { reply: FIRST } : {
        reply: welcome({
          room: { id: "live://1", epoch: 5, offset: n === 2 ? 14 : 10, recovered: true },
          mid: { epoch: 6, offset: 0, recovered: true },
          all: { epoch: 7, offset: 3, recovered: true },
        }),
        after: n === 2 ? [push(ROOM, 5, 11, "replayed 11")] : [],
      },
  });
  await using client = await connect(server.url, { ...GOIM, reconnect: FAST });
  const seen = record(client);
  server.drop();
  assert.ok(await until(() => seen.length === 1), "the first replayed push delivered");
  server.drop();
  assert.ok(await until(() => server.auths.length === 3), "client reconnected again");
  assert.deepEqual(JSON.parse(server.auths[2]!).recover.room, {
    id: "live://1",
    epoch: 5,
    offset: 11,
  });
});

Deno.test("an op 8 or op 13 that breaks section 8 is reported as a protocol error", async () => {
  const cases: [reply: string, error: RegExp][] = [
    ['{"streams":', /^Auth reply has no streams object: \{"streams":$/],
    ['{"ok":true}', /^Auth reply has no streams object: \{"ok":true\}$/],
    [
      welcome({ room: { epoch: 5, offset: 1 }, mid: { epoch: 6, offset: 0 } }),
      /^Auth reply's room has no id: /,
    ],
    [
      welcome({ mid: { epoch: "6", offset: 0 }, all: { epoch: 7, offset: 3 } }),
      /^Auth reply's mid has no valid epoch and offset: /,
    ],
  ];
  for (const [reply, error] of cases) {
    await using server = new ScriptedServer({
      auth: () => ({ reply }),
      changeRoom: (room) => JSON.stringify({ id: room, epoch: 7, offset: -1 }),
    });
    await using client = new Client(server.url, { ...GOIM, link: openLink, reconnect: false });
    const errors: Error[] = [];
    client.onError((err) => errors.push(err));
    await client.opened;
    await client.changeRoom("live://2");
    assert.equal(errors.length, 2, errors.join("; "));
    assert.ok(errors.every((err) => err instanceof ProtocolError));
    assert.match(errors[0]!.message, error);
    assert.match(errors[1]!.message, /^Room change reply has a malformed position: \{"id":/);
    assert.equal(client.state, "open");
  }
});
