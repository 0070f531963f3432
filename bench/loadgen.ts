// The load generator: a separate process that opens many loopback connections
// (goim over TCP, goim over WebSocket with its own RFC 6455 client side and
// masking, or raw TCP to the baseline), authenticates them, reads everything
// and counts deliveries and push-to-delivery latencies. Driven over
// stdin/stdout JSON lines by bench/load.ts, which runs several of these (one
// Deno process reading 10k sockets schedules its reads unfairly enough to
// add seconds to the measured tail) and merges their figures: so a snapshot
// carries the raw parts (histogram bins, per-connection means, fine timeline
// windows) rather than quantiles.
//
// Deliberately independent of src/: a bug in Comet's codec must not be
// mirrored here and cancel out.
import {
  HEADER,
  Histogram,
  nowMs,
  OP_AUTH,
  OP_AUTH_REPLY,
  OP_PUSH,
  OP_RAW,
  OP_STREAM_PUSH,
  serveCommands,
  sleep,
  STREAM_PREFIX,
  writeAll,
} from "./_common.ts";

type Kind = "tcp" | "ws" | "raw";

const enc = new TextEncoder();

const stats = {
  deliveries: 0,
  disconnects: 0, // op 6 frames
  wsCloses: 0,
  otherOps: 0,
  reads: 0,
  bytes: 0,
  closed: 0,
  errors: 0,
  firstDeliveryAt: 0,
  lastDeliveryAt: 0,
};
const hist = new Histogram();

// Latency by send time, in 50 ms windows from the `t0` the driver sends with
// `reset` (absolute ms, shared by every load generator); the driver merges
// them and regroups them into 500 ms windows from the first push. Tells a
// backlog that grows through a run (latency rising with send time) from a
// few starved connections.
const FINE = 50;
const FINE_WINDOWS = 20_000; // 1000 s
const winN = new Uint32Array(FINE_WINDOWS);
const winSum = new Float64Array(FINE_WINDOWS);
const winMax = new Float64Array(FINE_WINDOWS);
let winUsed = 0;
let timelineStart = 0;

// Float64 read without a DataView per chunk.
const f64 = new Float64Array(1);
const f64b = new Uint8Array(f64.buffer);

function int32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) | 0;
}

class Client {
  conn: Deno.TcpConn;
  kind: Kind;
  buf: Uint8Array;
  /** Bytes at the start of `buf` left from the last read: the head of a frame not yet whole. */
  have = 0;
  closed = false;
  onAuth: (() => void) | undefined;
  onClose: (() => void) | undefined;
  loop: Promise<void> | undefined;
  latN = 0;
  latSum = 0;

  constructor(conn: Deno.TcpConn, kind: Kind, bufSize: number) {
    this.conn = conn;
    this.kind = kind;
    this.buf = new Uint8Array(bufSize);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

const clients = new Set<Client>();

function frame(c: Client, data: Uint8Array, i: number, packLen: number, t: number): void {
  const op = int32(data, i + 8);
  // An op-18 stream push is a push whose bytes start 17 bytes later.
  const skip = op === OP_STREAM_PUSH ? STREAM_PREFIX : 0;
  if (op === OP_PUSH || skip > 0) {
    stats.deliveries++;
    if (stats.firstDeliveryAt === 0) stats.firstDeliveryAt = t;
    stats.lastDeliveryAt = t;
    if (packLen >= HEADER + skip + 8) {
      const b = i + HEADER + skip;
      for (let k = 0; k < 8; k++) f64b[k] = data[b + k]!;
      const sent = f64[0]!;
      const lat = t - sent;
      hist.add(lat);
      c.latN++;
      c.latSum += lat;
      if (timelineStart === 0) timelineStart = sent;
      const w = Math.max(0, Math.floor((sent - timelineStart) / FINE));
      if (w < FINE_WINDOWS) {
        winN[w]!++;
        winSum[w]! += lat;
        if (lat > winMax[w]!) winMax[w] = lat;
        if (w >= winUsed) winUsed = w + 1;
      }
    }
  } else if (op === OP_RAW) {
    // A WebSocket batch: the body is whole frames back to back.
    const end = i + packLen;
    for (let j = i + HEADER; j + HEADER <= end;) {
      const inner = int32(data, j);
      if (inner < HEADER || j + inner > end) {
        stats.errors++;
        return;
      }
      frame(c, data, j, inner, t);
      j += inner;
    }
  } else if (op === OP_AUTH_REPLY) {
    c.onAuth?.();
  } else if (op === 6) {
    stats.disconnects++;
  } else {
    stats.otherOps++;
  }
}

/** Walks goim frames back to back; returns the bytes consumed. */
function parseGoim(c: Client, data: Uint8Array, n: number, t: number): number {
  let i = 0;
  while (n - i >= HEADER) {
    const packLen = int32(data, i);
    if (packLen < HEADER || packLen > 1 << 22) {
      stats.errors++;
      c.close();
      return n;
    }
    if (n - i < packLen) break;
    frame(c, data, i, packLen, t);
    i += packLen;
  }
  return i;
}

/** Walks unmasked server WebSocket frames, each holding one goim frame; returns bytes consumed. */
function parseWs(c: Client, data: Uint8Array, n: number, t: number): number {
  let i = 0;
  while (n - i >= 2) {
    const b0 = data[i]!;
    let len = data[i + 1]! & 127;
    let h = 2;
    if (len === 126) {
      if (n - i < 4) break;
      len = (data[i + 2]! << 8) | data[i + 3]!;
      h = 4;
    } else if (len === 127) {
      if (n - i < 10) break;
      len = int32(data, i + 6) >>> 0;
      h = 10;
    }
    if (n - i < h + len) break;
    const opcode = b0 & 15;
    if (opcode === 2) {
      const at = i + h;
      const packLen = int32(data, at);
      if (packLen !== len) stats.errors++;
      else frame(c, data, at, packLen, t);
    } else if (opcode === 8) {
      stats.wsCloses++;
    }
    i += h + len;
  }
  return i;
}

async function readLoop(c: Client): Promise<void> {
  const parse = c.kind === "ws" ? parseWs : parseGoim;
  try {
    // No allocation per read: the unparsed tail moves to the front of the
    // buffer and the next read lands after it. With thousands of clients in
    // one process, the generators' own garbage would otherwise set the pace.
    for (;;) {
      if (c.buf.length - c.have < Math.min(1024, c.buf.length >> 2)) {
        // A frame nearly as large as the buffer: grow it rather than read a few bytes at a time.
        const grown = new Uint8Array(c.buf.length * 2);
        grown.set(c.buf);
        c.buf = grown;
      }
      const n = await c.conn.read(c.have === 0 ? c.buf : c.buf.subarray(c.have));
      if (n === null) break;
      const t = nowMs();
      stats.reads++;
      stats.bytes += n;
      const end = c.have + n;
      const used = parse(c, c.buf, end, t);
      if (used > 0 && used < end) c.buf.copyWithin(0, used, end);
      c.have = end - used;
    }
  } catch {
    // reset, or closed by us
  }
  if (clients.delete(c)) stats.closed++;
  c.closed = true;
  try {
    c.conn.close();
  } catch {
    // already closed
  }
  c.onClose?.();
}

function goimFrame(op: number, seq: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + body.length);
  const v = new DataView(out.buffer);
  v.setInt32(0, out.length);
  v.setInt16(4, HEADER);
  v.setInt16(6, 1);
  v.setInt32(8, op);
  v.setInt32(12, seq);
  out.set(body, HEADER);
  return out;
}

/** A client-to-server (masked) binary WebSocket frame. */
function wsMasked(payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const h = len < 126 ? 2 : 4;
  const out = new Uint8Array(h + 4 + len);
  out[0] = 0x82;
  if (len < 126) out[1] = 0x80 | len;
  else {
    out[1] = 0x80 | 126;
    out[2] = len >> 8;
    out[3] = len & 255;
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, h);
  for (let i = 0; i < len; i++) out[h + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

function wsKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
}

/** Reads the HTTP response head of the upgrade; keeps any bytes after it. */
async function readUpgrade(c: Client): Promise<void> {
  let head = new Uint8Array(0);
  for (;;) {
    const n = await c.conn.read(c.buf);
    if (n === null) throw new Error("Closed during the WebSocket upgrade");
    const joined = new Uint8Array(head.length + n);
    joined.set(head);
    joined.set(c.buf.subarray(0, n), head.length);
    head = joined;
    for (let i = 3; i < head.length; i++) {
      if (head[i - 3] === 13 && head[i - 2] === 10 && head[i - 1] === 13 && head[i] === 10) {
        const text = String.fromCharCode(...head.subarray(0, i));
        if (!/^HTTP\/1\.1 101 /.test(text)) {
          throw new Error(`Upgrade refused: ${text.slice(0, 40)}`);
        }
        const rest = head.subarray(i + 1);
        while (c.buf.length < rest.length) c.buf = new Uint8Array(c.buf.length * 2);
        c.buf.set(rest);
        c.have = rest.length;
        return;
      }
    }
    if (head.length > 8192) throw new Error("Upgrade response head too long");
  }
}

interface OpenSpec {
  kind: Kind;
  host: string;
  port: number;
  count: number;
  concurrency: number;
  room: string;
  keyPrefix: string;
  keyStart: number;
  bufSize: number;
  timeoutMs: number;
  path: string;
  streams: boolean;
}

async function openOne(s: OpenSpec, idx: number): Promise<void> {
  // No setNoDelay: a client writes once (twice over WebSocket, the second
  // after the upgrade response has acknowledged the first), so Nagle never
  // holds anything back, and the call is a syscall per connection.
  const conn = await Deno.connect({ hostname: s.host, port: s.port });
  const c = new Client(conn, s.kind, s.bufSize);
  try {
    if (s.kind === "ws") {
      const req = `GET ${s.path} HTTP/1.1\r\nHost: ${s.host}:${s.port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${wsKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
      await writeAll(conn, enc.encode(req));
      await readUpgrade(c);
    }
    const authed = new Promise<boolean>((resolve) => {
      c.onAuth = () => resolve(true);
      c.onClose = () => resolve(false);
    });
    clients.add(c);
    c.loop = readLoop(c);
    const auth = enc.encode(JSON.stringify({
      mid: s.keyStart + idx + 1,
      key: `${s.keyPrefix}${s.keyStart + idx}`,
      room_id: s.room,
      platform: "bench",
      accepts: [OP_PUSH],
      ...(s.streams && { recover: {} }),
    }));
    const f = goimFrame(OP_AUTH, 1, auth);
    await writeAll(conn, s.kind === "ws" ? wsMasked(f) : f);
    if (!(await authed)) throw new Error("Closed before the auth reply");
    c.onAuth = c.onClose = undefined;
  } catch (err) {
    c.close();
    throw err;
  }
}

async function open(s: OpenSpec) {
  const start = performance.now();
  const deadline = start + s.timeoutMs;
  let next = 0;
  let opened = 0;
  let failed = 0;
  const errors: string[] = [];
  let lastDone = start;
  const worker = async () => {
    while (next < s.count && performance.now() < deadline) {
      const idx = next++;
      try {
        await openOne(s, idx);
        opened++;
        lastDone = performance.now();
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(String((err as Error).message ?? err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(s.concurrency, s.count) }, worker));
  return { opened, failed, errors, elapsedMs: lastDone - start, live: clients.size };
}

/** Mean latency of every connection that got any (ms, to 0.01), for the driver to merge. */
function perConnMeans(): number[] {
  const means: number[] = [];
  for (const c of clients) if (c.latN > 0) means.push(Math.round((c.latSum / c.latN) * 100) / 100);
  return means;
}

/** The nonzero fine windows as flat [index, n, sum, max, ...]; index from `timelineStart`. */
function windows(): number[] {
  const out: number[] = [];
  for (let w = 0; w < winUsed; w++) {
    if (winN[w] !== 0) out.push(w, winN[w]!, Math.round(winSum[w]! * 10) / 10, winMax[w]!);
  }
  return out;
}

/** Counters; with `detail`, also the raw parts of the latency figures. */
function snapshot(detail: boolean) {
  const base = { ...stats, live: clients.size };
  if (!detail) return base;
  return {
    ...base,
    // This process alone (the driver reports merged figures).
    latency: {
      count: hist.count,
      p50: hist.quantile(0.5),
      p99: hist.quantile(0.99),
      max: hist.count ? hist.max : null,
      mean: hist.count ? hist.sum / hist.count : null,
    },
    hist: hist.compact(),
    perConnMeans: perConnMeans(),
    timelineStart,
    fineWindowMs: FINE,
    windows: windows(),
  };
}

function reset(t0: number): void {
  stats.deliveries =
    stats.disconnects =
    stats.wsCloses =
    stats.otherOps =
      0;
  stats.reads =
    stats.bytes =
    stats.errors =
    stats.closed =
      0;
  stats.firstDeliveryAt = stats.lastDeliveryAt = 0;
  hist.reset();
  winN.fill(0, 0, winUsed);
  winSum.fill(0, 0, winUsed);
  winMax.fill(0, 0, winUsed);
  winUsed = 0;
  timelineStart = t0;
  for (const c of clients) c.latN = c.latSum = 0;
}

await serveCommands(async (cmd) => {
  switch (cmd.cmd) {
    case "open":
      return await open({
        kind: (cmd.kind as Kind) ?? "tcp",
        host: String(cmd.host ?? "127.0.0.1"),
        port: Number(cmd.port),
        count: Number(cmd.count),
        concurrency: Number(cmd.concurrency ?? 200),
        room: String(cmd.room ?? "live://bench"),
        keyPrefix: String(cmd.keyPrefix ?? "b"),
        keyStart: Number(cmd.keyStart ?? 0),
        bufSize: Number(cmd.bufSize ?? 4096),
        timeoutMs: Number(cmd.timeoutMs ?? 60_000),
        path: String(cmd.path ?? "/sub"),
        streams: cmd.streams === true,
      });
    case "reset":
      // Without t0, windows start at the first send time seen.
      reset(Number(cmd.t0 ?? 0));
      return { live: clients.size };
    case "stats":
      return snapshot(cmd.detail !== false);
    case "quiet": {
      // Waits until no delivery arrived for idleMs, at most maxMs.
      const idle = Number(cmd.idleMs ?? 300);
      const until = performance.now() + Number(cmd.maxMs ?? 10_000);
      const want = Number(cmd.expect ?? Infinity);
      let last = stats.deliveries;
      let since = performance.now();
      while (performance.now() < until && stats.deliveries < want) {
        await sleep(25);
        if (stats.deliveries !== last) {
          last = stats.deliveries;
          since = performance.now();
        } else if (performance.now() - since >= idle) break;
      }
      return snapshot(cmd.detail !== false);
    }
    case "close_all": {
      const loops = [...clients].map((c) => c.loop);
      for (const c of clients) c.close();
      await Promise.race([Promise.all(loops), sleep(10_000)]);
      return { live: clients.size };
    }
    case "exit":
      return {};
    default:
      throw new Error(`Unknown command ${cmd.cmd}`);
  }
});
