// The slow-consumer rule over real sockets, on every transport: a member is slow when its
// socket refuses what is written to it for the write timeout, or when frames pushed to it
// alone pass its queue; frames waiting only for the server's own turn never make it slow.
import assert from "node:assert/strict";
import { type CometHandlerOptions, createCometHandler } from "../src/handler.ts";
import { silentLogger } from "../src/log.ts";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { Comet, type CometOptions } from "../src/server/comet.ts";
import type { Acceptor } from "../src/transport/acceptor.ts";
import { listenPkg } from "../src/transport/pkg.ts";
import { listenTcp } from "../src/transport/tcp.ts";
import { listenWs } from "../src/transport/websocket.ts";
import { until, utf8 } from "./_helpers.ts";
import { goimMessages, Opcode, WsClient } from "./_ws_client.ts";

const ROOM = "live://burst";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A member: counts the room pushes (op 1000) and goodbyes (op 6) it reads, until closed.
 * `stop()` makes it stop reading; its socket then fills.
 */
interface Member {
  pushes: number;
  goodbyes: number;
  close(): Promise<void>;
}

type Transport = "tcp" | "ws" | "pkg" | "serve";

/** A hub with one listener of `transport` on a free loopback port. */
class Server implements AsyncDisposable {
  readonly comet: Comet;
  readonly transport: Transport;
  #acceptor: Acceptor | undefined;
  #http: Deno.HttpServer<Deno.NetAddr> | undefined;
  #members: Member[] = [];

  constructor(transport: Transport, options: CometOptions) {
    this.transport = transport;
    this.comet = new Comet({ logger: silentLogger, ...options });
    const at = { hostname: "127.0.0.1", port: 0 };
    if (transport === "tcp") this.#acceptor = listenTcp(this.comet, at);
    else if (transport === "ws") this.#acceptor = listenWs(this.comet, at);
    else if (transport === "pkg") this.#acceptor = listenPkg(this.comet, at);
    else {
      const handler: CometHandlerOptions = {};
      this.#http = Deno.serve({ ...at, onListen() {} }, createCometHandler(this.comet, handler));
    }
  }

  get port(): number {
    return this.#acceptor?.addr.port ?? this.#http!.addr.port;
  }

  /** Connects and authenticates a member of the room that reads everything, or nothing. */
  async member(key: string, reads = true): Promise<Member> {
    const before = this.comet.connections;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
    const auth = utf8.encode(JSON.stringify({ key, room_id: ROOM, accepts: [1000] }));
    const member = this.transport === "tcp"
      ? _goimMember(conn, auth, reads)
      : this.transport === "pkg"
      ? _pkgMember(conn, auth, reads)
      : await _wsMember(conn, auth, reads);
    this.#members.push(member);
    assert.ok(await until(() => this.comet.connections > before), `${key} authenticated`);
    return member;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.comet.close(500);
    for (const m of this.#members) await m.close();
    this.#acceptor?.close();
    await this.#acceptor?.finished;
    await this.#http?.shutdown();
  }
}

/**
 * A member over a byte stream: reads `reads` times at most (Infinity: until it closes) and
 * hands what it has to `take`, which counts the whole units at its start and returns the
 * bytes they fill; the rest waits for the next read.
 */
function _streamMember(
  conn: Deno.TcpConn,
  reads: number,
  take: (bytes: Uint8Array, view: DataView, member: Member) => number,
): Member {
  const member: Member = { pushes: 0, goodbyes: 0, close: () => Promise.resolve() };
  let buf = new Uint8Array(0);
  const loop = (async () => {
    const chunk = new Uint8Array(64 * 1024);
    for (let i = 0; i < reads; i++) {
      const n = await conn.read(chunk).catch(() => null);
      if (n === null) return;
      const joined = new Uint8Array(buf.length + n);
      joined.set(buf);
      joined.set(chunk.subarray(0, n), buf.length);
      buf = joined.slice(take(joined, new DataView(joined.buffer), member));
    }
  })();
  member.close = async () => {
    try {
      conn.close();
    } catch { /* closed */ }
    await loop;
  };
  return member;
}

/** Counts goim frames in a byte stream: op 1000 and op 6. */
function _goimMember(conn: Deno.TcpConn, auth: Uint8Array, reads: boolean): Member {
  void conn.write(encodeFrame(Op.Auth, 1, auth));
  // A member that does not read still takes its auth reply, then stops.
  return _streamMember(conn, reads ? Infinity : 1, (bytes, view, member) => {
    let at = 0;
    while (bytes.length - at >= 16 && bytes.length - at >= view.getInt32(at)) {
      const op = view.getInt32(at + 8);
      if (op === 1000) member.pushes++;
      else if (op === Op.DisconnectReply) member.goodbyes++;
      at += view.getInt32(at);
    }
    return at;
  });
}

/** Counts pkg packages (the hub answers nothing to the auth package). */
function _pkgMember(conn: Deno.TcpConn, auth: Uint8Array, reads: boolean): Member {
  const out = new Uint8Array(2 + auth.length);
  new DataView(out.buffer).setUint16(0, auth.length);
  out.set(auth, 2);
  void conn.write(out);
  return _streamMember(conn, reads ? Infinity : 0, (bytes, view, member) => {
    let at = 0;
    while (bytes.length - at >= 2 && bytes.length - at >= 2 + view.getUint16(at)) {
      member.pushes++;
      at += 2 + view.getUint16(at);
    }
    return at;
  });
}

/** Counts goim frames in WebSocket messages, op-9 batches opened. */
async function _wsMember(conn: Deno.TcpConn, auth: Uint8Array, reads: boolean): Promise<Member> {
  const ws = await WsClient.connect(conn);
  await ws.send(encodeFrame(Op.Auth, 1, auth));
  const member: Member = { pushes: 0, goodbyes: 0, close: () => ws.close() };
  const reply = await ws.next();
  assert.equal(goimMessages(reply!.payload)[0]?.op, Op.AuthReply);
  if (!reads) return member;
  const loop = (async () => {
    for (;;) {
      const m = await ws.next(60_000).catch(() => null);
      if (m === null || m.opcode === Opcode.Close) return;
      if (m.opcode !== Opcode.Binary) continue;
      for (const f of goimMessages(m.payload)) {
        if (f.op === 1000) member.pushes++;
        else if (f.op === Op.DisconnectReply) member.goodbyes++;
      }
    }
  })();
  member.close = async () => {
    await ws.close().catch(() => {});
    await loop;
  };
  return member;
}

const TRANSPORTS: Transport[] = ["tcp", "ws", "pkg", "serve"];

for (const transport of TRANSPORTS) {
  Deno.test(`a burst to a room far behind the writer closes no member that reads (${transport})`, async () => {
    // Two writes at a time and a queue of 2: nearly every member waits for the server's turn
    // with far more than its queue's worth of room frames. None of that makes it slow.
    await using server = new Server(transport, { queueSize: 2, writeConcurrency: 2 });
    const members = await Promise.all(
      Array.from({ length: 60 }, (_, i) => server.member(`m${i}`)),
    );
    const pushes = 200;
    const body = new Uint8Array(64).fill(7);
    for (let i = 0; i < pushes; i++) assert.equal(server.comet.pushRoom(ROOM, 1000, body), 60);
    assert.ok(
      await until(() => members.every((m) => m.pushes === pushes), 20_000),
      `every member got every push: ${members.map((m) => m.pushes).join(" ")}`,
    );
    assert.equal(server.comet.stats.slowClosed, 0);
    assert.equal(members.reduce((n, m) => n + m.goodbyes, 0), 0);
    assert.equal(server.comet.connections, 60);
  });
}

for (const transport of ["tcp", "serve"] as const) {
  Deno.test(`members that stop reading are closed; the ones that read lose nothing (${transport})`, async () => {
    await using server = new Server(transport, { writeTimeout: 200 });
    const readers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => server.member(`r${i}`)),
    );
    const stopped = await Promise.all(
      Array.from({ length: 5 }, (_, i) => server.member(`s${i}`, false)),
    );
    const body = new Uint8Array(64 * 1024).fill(3);
    let pushed = 0;
    // Far more than loopback socket buffers hold for a member that does not read.
    while (server.comet.stats.slowClosed < 5 && pushed < 2000) {
      server.comet.pushRoom(ROOM, 1000, body);
      pushed++;
      // The readers keep up; what piles up is the stopped members'.
      if (pushed % 10 === 0) {
        await until(() => readers.every((r) => r.pushes >= pushed - 10), 10_000);
        await sleep(5);
      }
    }
    assert.equal(server.comet.stats.slowClosed, 5, `after ${pushed} pushes`);
    assert.ok(
      await until(() => readers.every((r) => r.pushes === pushed), 20_000),
      `every reader got all ${pushed}: ${readers.map((r) => r.pushes).join(" ")}`,
    );
    assert.ok(await until(() => server.comet.connections === 20));
    assert.equal(readers.reduce((n, r) => n + r.goodbyes, 0), 0);
    assert.equal(stopped.length, 5);
  });
}

Deno.test("slow readers under drop hold at most their queues, and give it back when they leave", async () => {
  await using server = new Server("tcp", { slow: "drop", queueSize: 8, writeTimeout: 100 });
  const readers = await Promise.all(
    Array.from({ length: 10 }, (_, i) => server.member(`s${i}`, false)),
  );
  const body = new Uint8Array(64 * 1024).fill(1);
  const frameBytes = body.length + 16;
  let most = 0;
  for (let i = 0; i < 400; i++) {
    server.comet.pushAll(1000, body);
    most = Math.max(most, server.comet.backlog.queueBytes);
    if (i % 20 === 0) await sleep(20);
  }
  assert.ok(server.comet.stats.dropped > 0, "the slow readers lost pushes");
  // Each holds its queue; until it counts as slow (100 ms), what was pushed meanwhile too.
  assert.ok(
    most <= 10 * 200 * frameBytes,
    `${most} bytes queued for 10 readers with queues of 8 frames`,
  );
  const now = server.comet.backlog.queueBytes;
  assert.ok(
    now <= 10 * 8 * frameBytes,
    `${most} bytes queued for 10 readers with queues of 8 frames`,
  );
  for (const r of readers) await r.close();
  assert.ok(await until(() => server.comet.connections === 0));
  assert.equal(server.comet.backlog.queueBytes, 0, "nothing stays counted once they left");
});

Deno.test("readers that stop do not make the server refuse broadcasts to the one that reads", async () => {
  // A backlog cap of 8 MiB against 10 stopped readers that would hold 300 broadcasts of 64 KiB.
  await using server = new Server("tcp", {
    slow: "drop",
    queueSize: 8,
    writeTimeout: 100,
    backlog: { maxBytes: 8 << 20 },
  });
  for (let i = 0; i < 10; i++) await server.member(`s${i}`, false);
  const reader = await server.member("reader");
  const body = new Uint8Array(64 * 1024).fill(2);
  for (let i = 1; i <= 300; i++) {
    server.comet.pushAll(1000, body); // throws BacklogFullError if refused
    if (i % 10 === 0) await until(() => reader.pushes === i, 10_000);
  }
  assert.ok(await until(() => reader.pushes === 300, 10_000), `${reader.pushes} of 300`);
  assert.deepEqual(server.comet.stats.pushesRefused, { room: 0, server: 0 });
  assert.ok(server.comet.stats.dropped > 0);
});
