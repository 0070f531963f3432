// Fuzzing a running server (TCP, WebSocket, pkg and the push API on loopback) for a bounded
// time and number of cases: random and mutated goim frames, partial frames, random bytes,
// slowloris-style dribbles, random WebSocket frames, and random HTTP requests over fetch and
// over raw TCP (malformed request lines and headers) to the API and WebSocket ports.
// Meanwhile well-behaved clients on every transport stay connected and must receive every
// push made during the run, in order. Afterwards the server still serves, its connection,
// handshake and timer counts are back to the well-behaved clients alone, and its memory is
// back near where it started.
//
// COMET_FUZZ_SEED replays a run's random choices (timing still differs); COMET_FUZZ_MS
// changes how long it runs (default 6000).
import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import type { CometServer } from "../src/serve.ts";
import { startServer, TestClient, text, until, utf8 } from "./_helpers.ts";
import { encodeClientFrame, goimMessages, Opcode, WsClient } from "./_ws_client.ts";
import { mulberry32 } from "./_random.ts";
import { concat } from "./_bytes.ts";

const TOKEN = "fuzz-token";
const DURATION_MS = Number(Deno.env.get("COMET_FUZZ_MS") ?? 6_000);
const MAX_CASES = 4_000;
const WORKERS = 12;
const SEED = Number(Deno.env.get("COMET_FUZZ_SEED") ?? (Date.now() % 0x7fffffff));
const GOOD_ROOM = "live://fuzz";
const GOOD_OP = 1000;
const GOOD_PREFIX = "good:";

/** The seeded generator with the helpers the fuzzer uses. */
class Rng {
  next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
  /** Sizes skewed small, with the occasional large one. */
  size(max: number): number {
    return this.chance(0.8) ? this.int(64) : this.int(max);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes everything; false once the server has closed the connection. */
async function write(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  try {
    let at = 0;
    while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    return true;
  } catch {
    return false;
  }
}

/** Writes in random pieces, with a random pause between some of them. */
async function dribble(r: Rng, conn: Deno.Conn, bytes: Uint8Array, pauseMs = 0): Promise<boolean> {
  for (let at = 0; at < bytes.length;) {
    const n = 1 + r.int(Math.min(bytes.length - at, r.pick([1, 3, 17, 512, 65536])));
    if (!(await write(conn, bytes.subarray(at, at + n)))) return false;
    at += n;
    if (pauseMs > 0 && r.chance(0.5)) await sleep(r.int(pauseMs));
  }
  return true;
}

/** Reads and discards for at most `ms` or until the server closes; then closes. */
async function drainAndClose(conn: Deno.Conn, ms: number): Promise<void> {
  const timer = setTimeout(() => close(conn), ms);
  try {
    const buf = new Uint8Array(16 * 1024);
    while ((await conn.read(buf)) !== null) { /* discard */ }
  } catch {
    // Closed by the timer, or reset by the server.
  } finally {
    clearTimeout(timer);
    close(conn);
  }
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

// ---- goim frames ----------------------------------------------------------------------

/** A frame with every header field under the caller's control. */
function rawFrame(
  op: number,
  body: Uint8Array,
  fields: { packLen?: number; headerLen?: number; ver?: number; seq?: number } = {},
): Uint8Array {
  const out = new Uint8Array(16 + body.length);
  const v = new DataView(out.buffer);
  v.setInt32(0, fields.packLen ?? out.length);
  v.setInt16(4, fields.headerLen ?? 16);
  v.setInt16(6, fields.ver ?? 1);
  v.setInt32(8, op);
  v.setInt32(12, fields.seq ?? 1);
  out.set(body, 16);
  return out;
}

const EXTREMES = [0, 1, -1, 15, 16, 17, 4096, 4112, 4113, 0x7fffffff, -0x80000000, 65535];

function authJson(r: Rng): Uint8Array {
  if (r.chance(0.1)) return r.bytes(r.size(300));
  const fields: Record<string, unknown> = {};
  if (r.chance(0.8)) fields.mid = r.pick([r.int(1000) + 1, -1, 1.5, "7", null, 2 ** 60]);
  if (r.chance(0.8)) fields.key = r.pick([`fz-${r.int(1e9)}`, "", 42, "x".repeat(300)]);
  if (r.chance(0.8)) {
    fields.room_id = r.pick([GOOD_ROOM, `live://${r.int(20)}`, "", "r".repeat(300), 5]);
  }
  if (r.chance(0.6)) fields.platform = r.pick(["web", "android", "", 1]);
  if (r.chance(0.7)) {
    fields.accepts = r.pick([
      [GOOD_OP],
      [GOOD_OP, 1001],
      [],
      "1000",
      [1.5],
      Array.from({ length: 2000 }, (_, i) => i),
    ]);
  }
  const json = JSON.stringify(fields);
  return utf8.encode(r.chance(0.1) ? json.slice(0, r.int(json.length)) : json);
}

function randomOpFrame(r: Rng): Uint8Array {
  const op = r.pick([
    Op.Heartbeat,
    Op.SendMsg,
    Op.ChangeRoom,
    Op.Sub,
    Op.Unsub,
    Op.Auth,
    Op.Raw,
    0,
    6,
    10,
    11,
    1000,
    r.int(0x7fffffff),
    -r.int(1000),
  ]);
  let body: Uint8Array;
  switch (op) {
    case Op.ChangeRoom:
      body = utf8.encode(r.pick([GOOD_ROOM, `live://${r.int(20)}`, "", "z".repeat(400)]));
      break;
    case Op.Sub:
    case Op.Unsub:
      body = utf8.encode(r.pick(["1000", "1000,1001", "x", "0x10", " ", "1e3", "99999999999"]));
      break;
    case Op.Auth:
      body = authJson(r);
      break;
    default:
      body = r.bytes(r.size(5000));
  }
  return rawFrame(op, body, { ver: r.pick([1, 0, -1, 2]), seq: r.int(0x7fffffff) });
}

function mutate(r: Rng, bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const v = new DataView(out.buffer);
  switch (r.int(6)) {
    case 0: // flip some bits
      for (let i = 0, n = 1 + r.int(4); i < n && out.length > 0; i++) {
        out[r.int(out.length)]! ^= 1 << r.int(8);
      }
      return out;
    case 1: // an extreme packLen
      if (out.length >= 4) v.setInt32(0, r.pick(EXTREMES));
      return out;
    case 2: // a wrong headerLen
      if (out.length >= 6) v.setInt16(4, r.pick([0, 15, 17, 32, -16, 4096]));
      return out;
    case 3: // truncated
      return out.subarray(0, r.int(out.length + 1));
    case 4: // random bytes spliced in
      return concat([out.subarray(0, r.int(out.length + 1)), r.bytes(r.size(40))]);
    default: // doubled
      return concat([out, out]);
  }
}

/** A stream of frames: an auth first (usually), then random, mutated and partial frames. */
function goimStream(r: Rng): Uint8Array {
  const parts: Uint8Array[] = [];
  if (r.chance(0.7)) parts.push(rawFrame(Op.Auth, authJson(r)));
  for (let i = 0, n = r.int(12); i < n; i++) {
    const f = randomOpFrame(r);
    parts.push(r.chance(0.3) ? mutate(r, f) : f);
  }
  if (r.chance(0.3)) parts.push(rawFrame(Op.SendMsg, r.bytes(100), { packLen: 16 + 4000 }));
  return concat(parts);
}

// ---- the scenarios --------------------------------------------------------------------

interface Ports {
  tcp: number;
  ws: number;
  pkg: number;
  api: number;
}

async function connect(port: number): Promise<Deno.Conn | undefined> {
  try {
    return await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return undefined;
  }
}

async function goimOverTcp(r: Rng, p: Ports): Promise<void> {
  const conn = await connect(p.tcp);
  if (!conn) return;
  await dribble(r, conn, goimStream(r));
  await drainAndClose(conn, r.int(300));
}

async function randomBytesTo(r: Rng, p: Ports): Promise<void> {
  const conn = await connect(r.pick([p.tcp, p.ws, p.pkg, p.api]));
  if (!conn) return;
  await dribble(r, conn, r.bytes(1 + r.size(20_000)));
  await drainAndClose(conn, r.int(200));
}

/** A header promising a body that never comes, or a request head that never ends. */
async function slowloris(r: Rng, p: Ports): Promise<void> {
  const port = r.pick([p.tcp, p.ws, p.pkg, p.api]);
  const conn = await connect(port);
  if (!conn) return;
  let bytes: Uint8Array;
  if (port === p.tcp) bytes = goimStream(r).subarray(0, 1 + r.int(40));
  else if (port === p.pkg) bytes = new Uint8Array([0x0f, 0xff, ...r.bytes(r.int(30))]);
  else bytes = utf8.encode(`GET /sub HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-a: `);
  await dribble(r, conn, bytes, 150);
  await drainAndClose(conn, r.int(1_500));
}

async function pkgFuzz(r: Rng, p: Ports): Promise<void> {
  const conn = await connect(p.pkg);
  if (!conn) return;
  const parts: Uint8Array[] = [];
  const pkg = (payload: Uint8Array, length = payload.length) =>
    concat([new Uint8Array([(length >> 8) & 0xff, length & 0xff]), payload]);
  if (r.chance(0.7)) parts.push(pkg(authJson(r)));
  for (let i = 0, n = r.int(10); i < n; i++) {
    const body = r.chance(0.3) ? new Uint8Array(0) : r.bytes(r.size(5000));
    parts.push(r.chance(0.2) ? pkg(body, r.int(65536)) : pkg(body));
  }
  await dribble(r, conn, concat(parts));
  await drainAndClose(conn, r.int(300));
}

/** A WebSocket frame with every field under the caller's control. */
function wsFrame(
  r: Rng,
  opcode: number,
  payload: Uint8Array,
  o: { fin?: boolean; rsv?: number; masked?: boolean; length?: number } = {},
): Uint8Array {
  const masked = o.masked ?? true;
  if (masked && o.length === undefined && o.rsv === undefined) {
    return encodeClientFrame(opcode, payload, o.fin ?? true);
  }
  const n = o.length ?? payload.length;
  const extra = n < 126 ? 0 : n < 0x10000 ? 2 : 8;
  const head = new Uint8Array(2 + extra + (masked ? 4 : 0));
  const v = new DataView(head.buffer);
  head[0] = ((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | (opcode & 0x0f);
  head[1] = (masked ? 0x80 : 0) | (extra === 0 ? n : extra === 2 ? 126 : 127);
  if (extra === 2) v.setUint16(2, n);
  if (extra === 8) v.setBigUint64(2, BigInt(n));
  if (masked) head.set(r.bytes(4), 2 + extra); // the payload goes out unmasked: garbage
  return concat([head, payload]);
}

async function wsFuzz(r: Rng, p: Ports): Promise<void> {
  const conn = await connect(p.ws);
  if (!conn) return;
  let ws: WsClient;
  try {
    ws = await WsClient.connect(conn, r.chance(0.9) ? "/sub" : "/nope");
  } catch {
    return; // refused (and closed by the client)
  }
  const parts: Uint8Array[] = [];
  if (r.chance(0.7)) parts.push(encodeClientFrame(Opcode.Binary, rawFrame(Op.Auth, authJson(r))));
  for (let i = 0, n = r.int(10); i < n; i++) {
    switch (r.int(8)) {
      case 0:
        parts.push(encodeClientFrame(Opcode.Binary, randomOpFrame(r)));
        break;
      case 1:
        parts.push(encodeClientFrame(Opcode.Binary, mutate(r, randomOpFrame(r))));
        break;
      case 2:
        parts.push(encodeClientFrame(Opcode.Text, utf8.encode("hello")));
        break;
      case 3:
        parts.push(encodeClientFrame(r.pick([Opcode.Ping, Opcode.Pong]), r.bytes(r.int(200))));
        break;
      case 4: // fragments, sometimes of a control frame
        parts.push(encodeClientFrame(r.pick([Opcode.Binary, Opcode.Ping]), r.bytes(20), false));
        parts.push(encodeClientFrame(Opcode.Continuation, r.bytes(20), r.chance(0.5)));
        break;
      case 5:
        parts.push(wsFrame(r, r.int(16), r.bytes(r.size(300)), {
          masked: r.chance(0.5),
          rsv: r.int(8),
        }));
        break;
      case 6: // a length that is a lie
        parts.push(wsFrame(r, Opcode.Binary, r.bytes(10), {
          length: r.pick([126, 65_536, 2 ** 40, 2 ** 53]),
        }));
        break;
      default: {
        const body = new Uint8Array(2 + r.int(20));
        new DataView(body.buffer).setUint16(0, r.pick([1000, 1005, 999, 5000, 1015, 65535]));
        parts.push(encodeClientFrame(Opcode.Close, body));
      }
    }
  }
  await dribble(r, conn, concat(parts));
  await drainAndClose(conn, r.int(300));
  await ws.close();
}

const METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "BREW", "get", ""];
const PATHS = [
  "/goim/push/keys",
  "/goim/push/mids",
  "/goim/push/room",
  "/goim/push/all",
  "/goim/online/top",
  "/goim/online/room",
  "/goim/online/total",
  "/goim/nodes/weighted",
  "/goim/nodes/instances",
  "/healthz",
  "/readyz",
  "/metrics",
  "/admin",
  "/admin/",
  "/admin/stats",
  "/admin/app.js",
  "/admin/push/room",
  "/admin/push/x",
  "/sub",
  "/",
  "/%",
  "/%00",
  "//x",
  "/goim/push/../../etc/passwd",
];

function query(r: Rng): string {
  const names = ["operation", "keys", "mids", "type", "room", "speed", "limit", "rooms", "token"];
  const values = ["1000", "-1", "x", "", "99999999999999999999", "%ff", "a,b,,c", "live", "7"];
  const parts: string[] = [];
  for (let i = 0, n = r.int(6); i < n; i++) {
    parts.push(`${r.pick(names)}=${r.pick(values)}`);
  }
  // Never the well-behaved clients' room: their pushes are counted exactly.
  return parts.length ? `?${parts.join("&").replace("room=fuzz", "room=x")}` : "";
}

async function httpFetch(r: Rng, p: Ports): Promise<void> {
  const method = r.pick(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]);
  const headers = new Headers();
  if (r.chance(0.5)) headers.set("authorization", r.pick([`Bearer ${TOKEN}`, "Bearer x", "x"]));
  if (r.chance(0.3)) headers.set("cookie", r.pick(["comet_admin=1", "a", "comet_admin="]));
  if (r.chance(0.3)) headers.set("origin", r.pick(["http://evil", "null", "http://127.0.0.1"]));
  if (r.chance(0.2)) headers.set("content-length", String(r.int(100)));
  const init: RequestInit = { method, headers, redirect: "manual" };
  if (method !== "GET" && method !== "HEAD" && r.chance(0.7)) init.body = r.bytes(r.size(3000));
  const abort = new AbortController();
  init.signal = abort.signal;
  const timer = setTimeout(() => abort.abort(), 2_000);
  try {
    const res = await fetch(`http://127.0.0.1:${p.api}${r.pick(PATHS)}${query(r)}`, init);
    await res.body?.cancel();
  } catch {
    // A request fetch refuses to send, or an abort: both fine.
  } finally {
    clearTimeout(timer);
  }
}

async function httpRaw(r: Rng, p: Ports): Promise<void> {
  const conn = await connect(r.chance(0.7) ? p.api : p.ws);
  if (!conn) return;
  const lines: string[] = [];
  const target = r.pick(PATHS) + query(r);
  lines.push(
    r.pick([
      `${r.pick(METHODS)} ${target} HTTP/1.1`,
      `${r.pick(METHODS)} ${target}`,
      `${r.pick(METHODS)} ${target} HTTP/9.9`,
      `GET ${"/a".repeat(r.int(20_000))} HTTP/1.1`,
      `GET\t${target}\tHTTP/1.1`,
      "\u0000\u0001 / HTTP/1.1",
      "",
      "HTTP/1.1 200 OK",
    ]),
  );
  for (let i = 0, n = r.int(8); i < n; i++) {
    lines.push(
      r.pick([
        "Host: 127.0.0.1",
        "Host: a b",
        "Content-Length: 5",
        "Content-Length: -1",
        "Content-Length: 99999999999999999999",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip, chunked, x",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: x",
        "no colon here",
        " folded: header",
        `X-Big: ${"b".repeat(r.int(10_000))}`,
        `Authorization: Bearer ${TOKEN}`,
        ": empty name",
      ]),
    );
  }
  const eol = r.chance(0.9) ? "\r\n" : "\n";
  let head = lines.join(eol) + eol + (r.chance(0.9) ? eol : "");
  if (r.chance(0.2)) head += "5\r\nhello\r\n0\r\n\r\n";
  const body = r.chance(0.3) ? r.bytes(r.size(2000)) : new Uint8Array(0);
  await dribble(r, conn, concat([utf8.encode(head), body]));
  await drainAndClose(conn, r.int(400));
}

const SCENARIOS: [number, (r: Rng, p: Ports) => Promise<void>][] = [
  [4, goimOverTcp],
  [2, randomBytesTo],
  [1, slowloris],
  [2, pkgFuzz],
  [3, wsFuzz],
  [3, httpFetch],
  [3, httpRaw],
];

function scenario(r: Rng): (r: Rng, p: Ports) => Promise<void> {
  const total = SCENARIOS.reduce((n, [w]) => n + w, 0);
  let pick = r.int(total);
  for (const [w, run] of SCENARIOS) {
    if (pick < w) return run;
    pick -= w;
  }
  return SCENARIOS[0]![1];
}

// ---- the well-behaved clients ---------------------------------------------------------

interface Good {
  name: string;
  /** The sequence numbers of the pushes received, in order of arrival. */
  seqs: number[];
  heartbeat(): Promise<void>;
  close(): Promise<void>;
}

function goodSeq(body: Uint8Array): number | undefined {
  const t = text(body);
  return t.startsWith(GOOD_PREFIX) ? Number(t.slice(GOOD_PREFIX.length)) : undefined;
}

function goodAuth(i: number): Record<string, unknown> {
  return { mid: 900_000 + i, key: `good-${i}`, room_id: GOOD_ROOM, accepts: [GOOD_OP] };
}

async function goodTcp(server: CometServer, i: number): Promise<Good> {
  const c = await TestClient.auth(server.addrs.tcp!.port, goodAuth(i));
  let taken = 0;
  const seqs: number[] = [];
  return {
    name: `tcp good-${i}`,
    get seqs() {
      // The helper buffers every frame; pick the pushes out as they come.
      const frames = c.buffered;
      for (; taken < frames.length; taken++) {
        const f = frames[taken]!;
        const seq = f.op === GOOD_OP ? goodSeq(f.body) : undefined;
        if (seq !== undefined) seqs.push(seq);
      }
      return seqs;
    },
    heartbeat: () => Promise.resolve(void c.sendFrame(Op.Heartbeat)),
    close: () => c.close(),
  };
}

async function goodWs(server: CometServer, i: number): Promise<Good> {
  const ws = await WsClient.connect(
    await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.ws!.port }),
  );
  await ws.send(encodeFrame(Op.Auth, 1, utf8.encode(JSON.stringify(goodAuth(i)))));
  const reply = await ws.next();
  assert.equal(goimMessages(reply!.payload)[0]!.op, Op.AuthReply);
  const seqs: number[] = [];
  const reading = (async () => {
    try {
      for (;;) {
        const m = await ws.next(120_000);
        if (m === null || m.opcode === Opcode.Close) break;
        if (m.opcode !== Opcode.Binary) continue;
        for (const f of goimMessages(m.payload)) {
          const seq = f.op === GOOD_OP ? goodSeq(f.body) : undefined;
          if (seq !== undefined) seqs.push(seq);
        }
      }
    } catch {
      // Closed by close() below.
    }
  })();
  return {
    name: `ws good-${i}`,
    seqs,
    heartbeat: () => ws.send(encodeFrame(Op.Heartbeat, 2, new Uint8Array(0))),
    close: async () => {
      await ws.close(1000);
      await reading;
    },
  };
}

async function goodPkg(server: CometServer, i: number): Promise<Good> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.pkg!.port });
  const auth = utf8.encode(JSON.stringify(goodAuth(i)));
  await write(conn, concat([new Uint8Array([auth.length >> 8, auth.length & 0xff]), auth]));
  assert.ok(await until(() => server.comet.channel(`good-${i}`) !== undefined), "pkg auth");
  const seqs: number[] = [];
  const reading = (async () => {
    let pending = new Uint8Array(0);
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        pending = concat([pending, buf.subarray(0, n)]);
        while (pending.length >= 2) {
          const len = (pending[0]! << 8) | pending[1]!;
          if (pending.length < 2 + len) break;
          const seq = goodSeq(pending.subarray(2, 2 + len));
          if (seq !== undefined) seqs.push(seq);
          pending = pending.slice(2 + len);
        }
      }
    } catch {
      // Closed by close() below.
    }
  })();
  return {
    name: `pkg good-${i}`,
    seqs,
    heartbeat: async () => void await write(conn, new Uint8Array([0, 0])),
    close: async () => {
      close(conn);
      await reading;
    },
  };
}

function heap(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Deno.memoryUsage().heapUsed;
}

Deno.test({
  name: `fuzz: garbage on every port leaves well-behaved clients whole (seed ${SEED})`,
  async fn() {
    const server = startServer({
      pkg: { hostname: "127.0.0.1", port: 0 },
      apiToken: TOKEN,
      handshakeTimeout: 1_000,
      closeGrace: 300,
    });
    const good: Good[] = [];
    try {
      const ports: Ports = {
        tcp: server.addrs.tcp!.port,
        ws: server.addrs.ws!.port,
        pkg: server.addrs.pkg!.port,
        api: server.addrs.api!.port,
      };
      for (let i = 0; i < 3; i++) good.push(await goodTcp(server, i));
      for (let i = 3; i < 5; i++) good.push(await goodWs(server, i));
      good.push(await goodPkg(server, 5));
      const GOOD = good.length;
      assert.equal(server.comet.connections, GOOD);
      const baseline = heap();
      const rssBaseline = Deno.memoryUsage().rss;

      const deadline = Date.now() + DURATION_MS;
      let cases = 0;
      const counts = new Map<string, number>();
      const workers = Array.from({ length: WORKERS }, async (_, w) => {
        const r = new Rng(SEED * 31 + w);
        while (Date.now() < deadline && cases < MAX_CASES) {
          cases++;
          const run = scenario(r);
          counts.set(run.name, (counts.get(run.name) ?? 0) + 1);
          await run(r, ports);
        }
      });

      // Pushes of every kind reach every well-behaved client exactly once; numbered in order.
      const kinds = [
        `room?type=live&room=fuzz`,
        `keys?${good.map((_, i) => `keys=good-${i}`).join("&")}`,
        `mids?${good.map((_, i) => `mids=${900_000 + i}`).join("&")}`,
        `all`,
      ];
      let pushed = 0;
      const pusher = (async () => {
        while (Date.now() < deadline - 300) {
          const path = `/goim/push/${kinds[pushed % kinds.length]}`;
          const sep = path.includes("?") ? "&" : "?";
          const res = await fetch(
            `http://127.0.0.1:${ports.api}${path}${sep}operation=${GOOD_OP}`,
            {
              method: "POST",
              headers: { authorization: `Bearer ${TOKEN}` },
              body: `${GOOD_PREFIX}${pushed}`,
            },
          );
          const body = await res.json();
          assert.equal(body.code, 0, `push ${pushed}: ${JSON.stringify(body)}`);
          pushed++;
          if (pushed % 10 === 0) await Promise.all(good.map((g) => g.heartbeat()));
          await sleep(15);
        }
      })();

      await Promise.all([...workers, pusher]);
      console.log(
        `fuzz seed ${SEED}: ${cases} cases in ${DURATION_MS} ms, ${pushed} pushes; ` +
          JSON.stringify(Object.fromEntries(counts)),
      );
      assert.ok(pushed >= 20, `only ${pushed} pushes went through`);

      // Every well-behaved client got every push, once, in order.
      const expected = Array.from({ length: pushed }, (_, i) => i);
      const complete = await until(() => good.every((g) => g.seqs.length >= pushed), 10_000);
      for (const g of good) {
        assert.deepEqual(g.seqs, expected, `${g.name} (seed ${SEED}, complete: ${complete})`);
      }

      // The garbage is gone: only the well-behaved clients are left, their deadlines alone.
      const comet = server.comet;
      const settled = await until(
        () => comet.connections === GOOD && comet.handshaking === 0 && comet.timers === GOOD,
        10_000,
      );
      assert.ok(
        settled,
        `connections ${comet.connections}, handshaking ${comet.handshaking}, ` +
          `timers ${comet.timers} (want ${GOOD}, 0, ${GOOD}; seed ${SEED})`,
      );
      assert.deepEqual([...comet.rooms], [[GOOD_ROOM, GOOD]]);
      for (let i = 0; i < GOOD; i++) assert.ok(comet.channel(`good-${i}`), `good-${i} is still in`);
      assert.ok(comet.stats.protocolErrors > 0, "the fuzz did reach the decoders");

      // Still serving: a new client gets in and gets a push; the API answers.
      await using late = await TestClient.auth(ports.tcp, { key: "late", accepts: [GOOD_OP] });
      assert.equal(comet.pushKeys(["late"], GOOD_OP, utf8.encode("hi")), 1);
      assert.equal(text((await late.nextOp(GOOD_OP)).body), "hi");
      const health = await fetch(`http://127.0.0.1:${ports.api}/readyz`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(health.status, 200);
      await health.body?.cancel();

      // Memory: back near the baseline. Loose bounds; the counts above are the precise check.
      const after = heap();
      const rss = Deno.memoryUsage().rss;
      console.log(
        `heap ${(baseline / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB, ` +
          `rss ${(rssBaseline / 2 ** 20).toFixed(1)} → ${(rss / 2 ** 20).toFixed(1)} MiB`,
      );
      assert.ok(after < baseline + 64 * 2 ** 20, `heap grew from ${baseline} to ${after}`);
      assert.ok(rss < rssBaseline + 256 * 2 ** 20, `rss grew from ${rssBaseline} to ${rss}`);
    } finally {
      await Promise.all(good.map((g) => g.close()));
      await server.shutdown();
    }
  },
});
