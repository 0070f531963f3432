// Shared by the load harness processes (driver, load generator, baseline server).
// No protocol logic of Comet's is imported here: the load generator and the
// baseline must not share code paths with the server they measure.
import v8 from "node:v8";

/** Absolute wall-clock ms with sub-ms precision, comparable across processes on one host. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** goim header size; push bodies are 64 bytes, so a push frame is 80 bytes. */
export const HEADER = 16;
export const BODY = 64;
export const FRAME = HEADER + BODY;
export const OP_AUTH = 7;
export const OP_AUTH_REPLY = 8;
export const OP_RAW = 9;
export const OP_PUSH = 1000;
/** docs/protocol.md 8.4: a push with its stream offset, for clients that opted in. */
export const OP_STREAM_PUSH = 18;
/** Bytes op 18 puts ahead of the pushed bytes. */
export const STREAM_PREFIX = 17;

/** Writes a goim header (big-endian) at `at`. */
export function writeHeader(out: Uint8Array, at: number, packLen: number, op: number, seq = 0) {
  const v = new DataView(out.buffer, out.byteOffset + at, HEADER);
  v.setInt32(0, packLen);
  v.setInt16(4, HEADER);
  v.setInt16(6, 1);
  v.setInt32(8, op);
  v.setInt32(12, seq);
}

/**
 * A 64-byte push body: float64 (little-endian) send time in absolute ms at 0,
 * uint32 push id at 8, filler after.
 */
export function pushBody(id: number, at = nowMs()): Uint8Array {
  const b = new Uint8Array(BODY).fill(0x2e);
  const v = new DataView(b.buffer);
  v.setFloat64(0, at, true);
  v.setUint32(8, id, true);
  return b;
}

/** A whole 80-byte op-1000 frame around {@linkcode pushBody}. */
export function pushFrame(id: number, at = nowMs()): Uint8Array {
  const f = new Uint8Array(FRAME);
  writeHeader(f, 0, FRAME, OP_PUSH);
  f.set(pushBody(id, at), HEADER);
  return f;
}

export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let at = 0;
  while (at < data.length) at += await conn.write(at === 0 ? data : data.subarray(at));
}

/**
 * Reads a /proc file. Deno 2 wants --allow-all for any /proc path, so this goes
 * through `cat` (the driver has --allow-run anyway) instead.
 */
export function readProc(file: string): string {
  const out = new Deno.Command("cat", { args: [file], stdout: "piped", stderr: "null" })
    .outputSync();
  if (!out.success) throw new Error(`Cannot read ${file}`);
  return new TextDecoder().decode(out.stdout);
}

/** VmRSS of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const s = readProc(`/proc/${pid}/status`);
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(s);
  if (!m) throw new Error(`No VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** utime + stime of a process in seconds (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const s = readProc(`/proc/${pid}/stat`);
  const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
  // Fields after the name start at field 3 (state); utime is field 14, stime 15.
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Reads newline-separated JSON commands from stdin and answers each with one
 * JSON line on stdout carrying the command's `id`. Used by the child processes.
 */
export async function serveCommands(
  handle: (cmd: Record<string, unknown>) => Promise<unknown> | unknown,
): Promise<void> {
  const enc = new TextEncoder();
  let rest = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    const lines = rest.split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      if (line.trim() === "") continue;
      const cmd = JSON.parse(line) as Record<string, unknown>;
      let reply: unknown;
      try {
        reply = { id: cmd.id, ok: true, ...(await handle(cmd) as object) };
      } catch (err) {
        reply = { id: cmd.id, ok: false, error: String((err as Error)?.stack ?? err) };
      }
      Deno.stdout.writeSync(enc.encode(JSON.stringify(reply) + "\n"));
      if (cmd.cmd === "exit") Deno.exit(0);
    }
  }
}

/** A {@linkcode Histogram} in transit between processes: nonzero bins only. */
export interface CompactHistogram {
  /** Flat pairs: bin index, count. */
  bins: number[];
  count: number;
  overflow: number;
  max: number;
  sum: number;
}

/** Latency histogram: 0.05 ms bins up to 5 s, one overflow bin; p50/p99 from the bins. */
export class Histogram {
  static readonly BIN = 0.05;
  bins = new Uint32Array(100_000);
  count = 0;
  overflow = 0;
  max = 0;
  sum = 0;

  add(ms: number): void {
    if (ms < 0) ms = 0;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
    const i = Math.floor(ms / Histogram.BIN);
    if (i < this.bins.length) this.bins[i]!++;
    else this.overflow++;
  }

  reset(): void {
    this.bins.fill(0);
    this.count =
      this.overflow =
      this.max =
      this.sum =
        0;
  }

  /** The nonzero bins as flat [index, count, index, count, ...] plus the totals, for merging. */
  compact(): CompactHistogram {
    const bins: number[] = [];
    for (let i = 0; i < this.bins.length; i++) {
      const n = this.bins[i]!;
      if (n !== 0) bins.push(i, n);
    }
    return { bins, count: this.count, overflow: this.overflow, max: this.max, sum: this.sum };
  }

  /** Adds another histogram's {@linkcode Histogram.compact} form to this one. */
  merge(c: CompactHistogram): void {
    for (let j = 0; j + 1 < c.bins.length; j += 2) this.bins[c.bins[j]!]! += c.bins[j + 1]!;
    this.count += c.count;
    this.overflow += c.overflow;
    this.sum += c.sum;
    if (c.max > this.max) this.max = c.max;
  }

  quantile(q: number): number | null {
    if (this.count === 0) return null;
    const want = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.bins.length; i++) {
      seen += this.bins[i]!;
      if (seen >= want) return (i + 1) * Histogram.BIN;
    }
    return this.max;
  }
}

/**
 * Sends one command to Redis on 127.0.0.1:`port` over a fresh connection and
 * resolves with the first reply bytes as text (enough for PING, FLUSHALL, DBSIZE).
 */
export async function redisCommand(port: number, ...args: string[]): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const enc = new TextEncoder();
    let req = `*${args.length}\r\n`;
    for (const a of args) req += `$${enc.encode(a).length}\r\n${a}\r\n`;
    await writeAll(conn, enc.encode(req));
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    conn.close();
  }
}

/**
 * V8 heap spaces, name → [committed, used] bytes: shows which space holds a
 * process's heap slack (young generation sized by a burst, or old-space holes).
 */
export function heapSpaces(): Record<string, [number, number]> {
  return Object.fromEntries(
    v8.getHeapSpaceStatistics().filter((s) => s.space_size > 0).map((s) => [
      s.space_name,
      [s.space_size, s.space_used_size],
    ]),
  );
}
