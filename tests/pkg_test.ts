// Tests of the gf gtcp "pkg" transport: the streaming package decoder, the
// goim-frame-to-package encoder, PkgWire over a scripted connection, and its framing over
// real loopback sockets with a raw pkg client. Whole sessions, as on every transport, run
// in transport_conformance_test.ts.
import type { Acceptor } from "../src/transport/acceptor.ts";
import assert from "node:assert/strict";
import { encodeFrame, type Frame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { ProtocolError } from "../src/protocol/protocol_error.ts";
import { silentLogger } from "../src/log.ts";
import type { Channel } from "../src/server/channel.ts";
import { Comet } from "../src/server/comet.ts";
import {
  encodePkg,
  listenPkg,
  PkgDecoder,
  pkgHeaderMax,
  type PkgHeaderSize,
  PkgWire,
} from "../src/transport/pkg.ts";
import { header, pkg, PkgClient } from "./_pkg_client.ts";
import { mulberry32 as rng } from "./_random.ts";
import { concat } from "./_bytes.ts";

const utf8 = new TextEncoder();
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const SIZES: readonly PkgHeaderSize[] = [1, 2, 3, 4];

function bytesOf(length: number, fill: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = (fill + i) & 0xff;
  return b;
}

/** Independent reference parser: every package in `bytes`, which must end on a boundary. */
function parse(headerSize: number, bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    let length = 0;
    for (let i = 0; i < headerSize; i++) length = length * 256 + bytes[at + i]!;
    at += headerSize;
    assert.ok(at + length <= bytes.length, "package runs past the end");
    out.push(bytes.slice(at, at + length));
    at += length;
  }
  return out;
}

/** Splits `bytes` into random pieces (1 to `max` bytes; 0-length pieces too). */
function chunk(bytes: Uint8Array, random: () => number, max: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = Math.floor(random() * (max + 1));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

function decodeAll(decoder: PkgDecoder, pieces: readonly Uint8Array[]): Uint8Array[] {
  const got: Uint8Array[] = [];
  for (const piece of pieces) for (const p of decoder.decode(piece)) got.push(p);
  return got;
}

// ---------------------------------------------------------------- decoder

Deno.test("pkg decoder survives random chunkings for header sizes 1 to 4", () => {
  for (const h of SIZES) {
    const random = rng(1000 + h);
    const maxBody = 600;
    const limit = Math.min(maxBody, pkgHeaderMax(h));
    const payloads: Uint8Array[] = [];
    for (let i = 0; i < 60; i++) {
      const r = random();
      const length = r < 0.2 ? 0 : r < 0.3 ? limit : Math.floor(random() * limit);
      payloads.push(bytesOf(length, i));
    }
    const stream = concat(payloads.map((p) => pkg(h, p)));
    for (const max of [1, 2, 3, 7, 64, 512, stream.length]) {
      const decoder = new PkgDecoder({ headerSize: h, maxBody });
      const pieces = max === 1 ? [...stream].map((b) => new Uint8Array([b])) : chunk(
        stream,
        random,
        max,
      );
      const got = decodeAll(decoder, pieces);
      assert.equal(got.length, payloads.length, `header ${h}, pieces up to ${max}`);
      for (let i = 0; i < got.length; i++) assert.deepEqual(got[i], payloads[i]);
      assert.equal(decoder.buffered, 0);
    }
  }
});

Deno.test("pkg decoder copies leftovers so the caller may reuse its read buffer", () => {
  for (const h of SIZES) {
    const payloads = [bytesOf(250, 1), bytesOf(0, 0), bytesOf(5, 9), bytesOf(200, 3)];
    const stream = concat(payloads.map((p) => pkg(h, p)));
    const decoder = new PkgDecoder({ headerSize: h });
    const buf = new Uint8Array(7);
    const got: Uint8Array[] = [];
    for (let at = 0; at < stream.length; at += buf.length) {
      const n = Math.min(buf.length, stream.length - at);
      buf.set(stream.subarray(at, at + n));
      for (const p of decoder.decode(buf.subarray(0, n))) got.push(p);
      buf.fill(0xee); // scribbles over what the decoder borrowed
    }
    assert.deepEqual(got, payloads);
  }
});

Deno.test("pkg decoder keeps bytes pushed twice without draining", () => {
  const decoder = new PkgDecoder({ headerSize: 2 });
  const a = pkg(2, "ab");
  const b = pkg(2, "cde");
  decoder.push(concat([a, b.subarray(0, 1)]));
  decoder.push(b.subarray(1));
  assert.equal(text(decoder.next()!), "ab");
  assert.equal(text(decoder.next()!), "cde");
  assert.equal(decoder.next(), undefined);
});

Deno.test("pkg decoder accepts the max length and fails past it, for good", () => {
  for (const h of SIZES) {
    const maxBody = 300;
    const limit = Math.min(maxBody, pkgHeaderMax(h));
    const ok = new PkgDecoder({ headerSize: h, maxBody });
    assert.equal(ok.maxPayload, limit);
    assert.deepEqual([...ok.decode(pkg(h, bytesOf(limit, 4)))], [bytesOf(limit, 4)]);

    if (limit + 1 > pkgHeaderMax(h)) continue; // a 1-byte header cannot say 256
    const bad = new PkgDecoder({ headerSize: h, maxBody });
    bad.push(header(h, limit + 1).subarray(0, 1));
    if (h > 1) assert.equal(bad.next(), undefined);
    bad.push(header(h, limit + 1).subarray(1));
    assert.throws(() => bad.next(), ProtocolError);
    assert.throws(() => bad.next(), /Package exceeds the limit of 300 bytes: 301/);
    bad.push(pkg(h, "more"));
    assert.throws(() => bad.next(), ProtocolError);
    assert.equal(bad.buffered, 0);
  }
});

Deno.test("pkg decoder caps the payload at what the header can express", () => {
  const huge = Number.MAX_SAFE_INTEGER;
  assert.equal(new PkgDecoder({ headerSize: 1, maxBody: huge }).maxPayload, 0xff);
  assert.equal(new PkgDecoder({ headerSize: 2, maxBody: huge }).maxPayload, 0xffff);
  assert.equal(new PkgDecoder({ headerSize: 3, maxBody: huge }).maxPayload, 0xffffff);
  // gf stops a 4-byte header at math.MaxInt32.
  const four = new PkgDecoder({ headerSize: 4, maxBody: huge });
  assert.equal(four.maxPayload, 0x7fffffff);
  four.push(new Uint8Array([0x80, 0, 0, 0]));
  assert.throws(() => four.next(), /Package exceeds the limit of 2147483647 bytes: 2147483648/);
  assert.equal(new PkgDecoder().maxPayload, 4096);
  assert.equal(new PkgDecoder().headerSize, 2);
});

Deno.test("pkg options are validated", () => {
  for (const headerSize of [0, 5, 2.5, NaN]) {
    assert.throws(
      () => new PkgDecoder({ headerSize: headerSize as PkgHeaderSize }),
      RangeError,
    );
  }
  for (const maxBody of [-1, 1.5, Infinity]) {
    assert.throws(() => new PkgDecoder({ maxBody }), /Max body must be a non-negative integer/);
  }
  assert.throws(() => encodePkg(new Uint8Array(256), 1), RangeError);
  assert.deepEqual(encodePkg(utf8.encode("hi")), new Uint8Array([0, 2, 104, 105]));
  assert.deepEqual(encodePkg(new Uint8Array(0), 3), new Uint8Array(3));
  for (const h of SIZES) {
    assert.deepEqual(encodePkg(bytesOf(255, 0), h), pkg(h, bytesOf(255, 0)));
  }
});

// ---------------------------------------------------------------- wire over a scripted conn

/** A Deno.Conn stand-in: reads are served from a script, writes are recorded. */
class FakeConn {
  written: Uint8Array[] = [];
  closed = false;
  remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: "10.0.0.7", port: 4242 };
  readSizes: number[] = [];
  #script: Uint8Array[];
  #writeMax: number;

  constructor(script: Uint8Array[] = [], writeMax = Infinity) {
    this.#script = script;
    this.#writeMax = writeMax;
  }

  read(buf: Uint8Array): Promise<number | null> {
    this.readSizes.push(buf.length);
    if (this.closed) return Promise.reject(new Deno.errors.BadResource("closed"));
    const next = this.#script[0];
    if (next === undefined) return Promise.resolve(null);
    const n = Math.min(buf.length, next.length);
    buf.set(next.subarray(0, n));
    if (n === next.length) this.#script.shift();
    else this.#script[0] = next.subarray(n);
    return Promise.resolve(n);
  }

  write(data: Uint8Array): Promise<number> {
    const n = Math.min(data.length, this.#writeMax);
    this.written.push(data.slice(0, n));
    return Promise.resolve(n);
  }

  close(): void {
    this.closed = true;
  }

  get conn(): Deno.Conn {
    return this as unknown as Deno.Conn;
  }
}

async function readAll(wire: PkgWire): Promise<Frame[]> {
  const frames: Frame[] = [];
  for (let f = await wire.read(); f !== null; f = await wire.read()) frames.push(f);
  return frames;
}

Deno.test("pkg wire maps auth, heartbeats and messages onto goim frames", async () => {
  for (const h of SIZES) {
    const auth = utf8.encode('{"mid":1,"room_id":"live://1"}');
    const big = bytesOf(Math.min(2000, pkgHeaderMax(h)), 5);
    const stream = concat([
      pkg(h, auth),
      pkg(h, ""),
      pkg(h, "one"),
      pkg(h, ""),
      pkg(h, big),
      pkg(h, "three"),
    ]);
    const fake = new FakeConn(chunk(stream, rng(h), 40));
    const wire = new PkgWire(fake.conn, { headerSize: h, maxBody: 4096 });
    assert.equal(wire.info.transport, "pkg");
    assert.deepEqual(wire.info.remoteAddr, { hostname: "10.0.0.7", port: 4242 });
    assert.equal(wire.headerSize, h);
    const frames = await readAll(wire);
    assert.deepEqual(frames.map((f) => [f.op, f.seq]), [
      [Op.Auth, 0],
      [Op.Heartbeat, 0],
      [Op.SendMsg, 1],
      [Op.Heartbeat, 0],
      [Op.SendMsg, 2],
      [Op.SendMsg, 3],
    ]);
    assert.ok(frames.every((f) => f.ver === 1));
    assert.deepEqual(frames[0]!.body, auth);
    assert.equal(text(frames[2]!.body), "one");
    assert.deepEqual(frames[4]!.body, big);
    assert.equal(text(frames[5]!.body), "three");
    assert.ok(fake.readSizes.every((n) => n === 512), "reads use the small buffer");
  }
});

Deno.test("pkg wire treats an empty first package as the auth body", async () => {
  const fake = new FakeConn([concat([pkg(2, ""), pkg(2, "")])]);
  const frames = await readAll(new PkgWire(fake.conn));
  assert.deepEqual(frames.map((f) => f.op), [Op.Auth, Op.Heartbeat]);
  assert.equal(frames[0]!.body.length, 0);
});

Deno.test("pkg wire closes the connection on a length over the limit", async () => {
  for (const h of SIZES) {
    const limit = Math.min(100, pkgHeaderMax(h));
    const over = limit + 1 > pkgHeaderMax(h) ? undefined : header(h, limit + 1);
    if (over === undefined) continue;
    const fake = new FakeConn([pkg(h, "{}"), pkg(h, bytesOf(limit, 0)), over, pkg(h, "x")]);
    const wire = new PkgWire(fake.conn, { headerSize: h, maxBody: 100 });
    assert.equal((await wire.read())?.op, Op.Auth);
    assert.equal((await wire.read())?.body.length, limit);
    await assert.rejects(wire.read(), ProtocolError);
    assert.ok(fake.closed, "the socket is closed before the error surfaces");
    await assert.rejects(wire.read(), ProtocolError);
    wire.close(); // idempotent
  }
});

Deno.test("pkg wire read returns null at end of stream and after close", async () => {
  const fake = new FakeConn([pkg(2, "{}").subarray(0, 3)]);
  const wire = new PkgWire(fake.conn);
  assert.equal(await wire.read(), null, "a truncated package is just the end");
  const other = new FakeConn([pkg(2, "{}")]);
  const closed = new PkgWire(other.conn);
  closed.close();
  assert.equal(await closed.read(), null);
  assert.ok(other.closed);
});

function encodeWith(wire: PkgWire, frames: readonly Uint8Array[]): Uint8Array {
  const bytes = frames.reduce((n, f) => n + f.length, 0);
  // Padding past `count` proves encode honours it.
  return wire.encode([...frames, encodeFrame(1000, 0, utf8.encode("never"))], frames.length, bytes);
}

Deno.test("pkg wire encodes replies and pushes as bare packages, in one buffer", () => {
  for (const h of SIZES) {
    const wire = new PkgWire(new FakeConn().conn, { headerSize: h });
    const online = new Uint8Array([0, 0, 0, 3]);
    const frames = [
      encodeFrame(Op.AuthReply, 1),
      encodeFrame(Op.HeartbeatReply, 2, online),
      encodeFrame(Op.SendMsgReply, 3, utf8.encode("echo")),
      encodeFrame(1000, 0, utf8.encode("room")),
      encodeFrame(Op.ChangeRoomReply, 4, utf8.encode("live://2")),
      encodeFrame(Op.SubReply, 5, utf8.encode("1000")),
      encodeFrame(Op.UnsubReply, 6, utf8.encode("1000")),
      encodeFrame(1001, 0, new Uint8Array(0)),
      encodeFrame(Op.DisconnectReply, 0, utf8.encode("bye")),
    ];
    const out = encodeWith(wire, frames);
    assert.deepEqual(parse(h, out).map(text), ["", "echo", "room", ""]);
    assert.equal(out.length, 4 * h + 8);
    assert.equal(out.byteOffset, 0);
    assert.equal(out.buffer.byteLength, out.length, "exactly one buffer of exactly the size");
    assert.equal(wire.skipped, 0);
  }
});

Deno.test("pkg wire unpacks the inner frames of an op-9 batch", () => {
  const inner = concat([
    encodeFrame(1000, 0, utf8.encode("a")),
    encodeFrame(Op.AuthReply, 0),
    encodeFrame(1002, 0, utf8.encode("bc")),
  ]);
  const wire = new PkgWire(new FakeConn().conn, { headerSize: 3 });
  const out = encodeWith(wire, [
    encodeFrame(Op.Raw, 0, inner),
    encodeFrame(1001, 0, utf8.encode("d")),
  ]);
  assert.deepEqual(parse(3, out).map(text), ["a", "bc", "d"]);
});

Deno.test("pkg wire skips a frame too large for its header and counts it", () => {
  const wire = new PkgWire(new FakeConn().conn, { headerSize: 1 });
  const out = encodeWith(wire, [
    encodeFrame(1000, 0, bytesOf(255, 0)),
    encodeFrame(1000, 0, bytesOf(256, 0)),
    encodeFrame(Op.SendMsgReply, 1, bytesOf(1000, 0)),
    encodeFrame(1000, 0, utf8.encode("small")),
  ]);
  const got = parse(1, out);
  assert.equal(got.length, 2);
  assert.deepEqual(got[0], bytesOf(255, 0));
  assert.equal(text(got[1]!), "small");
  assert.equal(wire.skipped, 2);
});

Deno.test("pkg wire encodes nothing for a flush of control replies only", async () => {
  const fake = new FakeConn();
  const wire = new PkgWire(fake.conn);
  const out = encodeWith(wire, [encodeFrame(Op.AuthReply, 1), encodeFrame(Op.DisconnectReply, 0)]);
  assert.equal(out.length, 0);
  await wire.write(out);
  assert.equal(fake.written.length, 0, "an empty flush costs no syscall");
});

Deno.test("pkg wire writes everything across partial writes", async () => {
  const fake = new FakeConn([], 3);
  const wire = new PkgWire(fake.conn);
  const data = pkg(2, bytesOf(20, 1));
  await wire.write(data);
  assert.deepEqual(concat(fake.written), data);
  assert.equal(fake.written.length, 8);
});

// ---------------------------------------------------------------- loopback

interface Env {
  comet: Comet;
  acceptor: Acceptor;
  port: number;
  headerSize: PkgHeaderSize;
  clients: PkgClient[];
  auth(key: string, extra?: Record<string, unknown>): Promise<PkgClient>;
}

/** Runs `fn` against a hub with a pkg listener on a free port, then closes everything. */
async function withPkgServer(headerSize: PkgHeaderSize, fn: (env: Env) => Promise<void>) {
  const comet = new Comet({ logger: silentLogger });
  const acceptor = listenPkg(comet, { hostname: "127.0.0.1", port: 0, headerSize });
  const clients: PkgClient[] = [];
  const env: Env = {
    comet,
    acceptor,
    port: acceptor.addr.port,
    headerSize,
    clients,
    async auth(key, extra = {}) {
      const auth = { mid: 0, key, room_id: "live://1", platform: "web", accepts: [1000, 1001] };
      const c = await PkgClient.auth(comet, acceptor.addr.port, headerSize, { ...auth, ...extra });
      clients.push(c);
      return c;
    },
  };
  try {
    await fn(env);
  } finally {
    await comet.close();
    acceptor.close();
    await acceptor.finished;
    for (const c of clients) await c.close();
  }
}

// The conformance test runs whole pkg sessions with a 2-byte header; these are the framing's own.
for (const h of SIZES) {
  Deno.test(`pkg session with a ${h}-byte header: auth, heartbeat, echo`, async () => {
    await withPkgServer(h, async ({ auth }) => {
      const c = await auth("k1");
      // The first package back is the heartbeat reply: the auth reply was not sent.
      await c.send("");
      assert.equal((await c.next()).length, 0);
      await c.send("hello");
      assert.equal(await c.nextText(), "hello");
      assert.ok(await c.silent(), "one reply per message");
      assert.equal(c.leftover, 0);
    });
  });
}

Deno.test("pkg session: a package split byte by byte is read whole", async () => {
  await withPkgServer(2, async ({ auth }) => {
    const c = await auth("k1");
    for (const b of pkg(2, "slow")) {
      await c.write(new Uint8Array([b]));
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal(await c.nextText(), "slow");
  });
});

Deno.test("pkg session: pushes queued in one flush arrive as separate packages", async () => {
  await withPkgServer(3, async ({ comet, auth }) => {
    const c = await auth("k1");
    const wire = (comet.channel("k1") as Channel).wire as PkgWire;
    const write = wire.write.bind(wire);
    const writes: number[] = [];
    wire.write = (data) => {
      writes.push(data.length);
      return write(data);
    };
    // Queued synchronously, so the writer drains all five in one wake-up.
    for (let i = 0; i < 5; i++) comet.pushRoom("live://1", 1000 + i, utf8.encode(`m${i}`));
    for (let i = 0; i < 5; i++) assert.equal(await c.nextText(), `m${i}`);
    assert.deepEqual(writes, [5 * (3 + 2)], "one write of five packages");
    assert.ok(await c.silent());
  });
});

Deno.test("pkg session: a push too large for a 1-byte header is skipped", async () => {
  await withPkgServer(1, async ({ comet, auth }) => {
    const c = await auth("k1");
    const wire = (comet.channel("k1") as Channel).wire as PkgWire;
    assert.equal(wire.skipped, 0);
    assert.equal(comet.pushKeys(["k1"], 1000, bytesOf(256, 0)), 1, "queued, then skipped");
    comet.pushKeys(["k1"], 1000, bytesOf(255, 7));
    assert.deepEqual(await c.next(), bytesOf(255, 7));
    assert.equal(wire.skipped, 1);

    // An echo over 255 bytes cannot arrive: the inbound cap is 255 too.
    await c.write(concat([new Uint8Array([255]), bytesOf(255, 1)]));
    assert.deepEqual(await c.next(), bytesOf(255, 1));
    assert.equal(c.leftover, 0);
  });
});

Deno.test("listenPkg rejects a bad header size before binding", async () => {
  const comet = new Comet({ logger: silentLogger });
  assert.throws(
    () => listenPkg(comet, { port: 0, headerSize: 8 as PkgHeaderSize }),
    /Header size must be 1, 2, 3 or 4: 8/,
  );
  await comet.close();
});
