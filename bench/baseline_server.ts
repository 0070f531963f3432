// The runtime baseline: a plain Deno TCP server with no protocol logic. It
// accepts connections, keeps one pending read per connection with a small
// buffer, answers a client's first bytes with one pre-encoded 16-byte op-8
// frame (so a connect + auth round trip costs the client what it costs
// against Comet), and on command writes pre-encoded 80-byte goim frames to
// every connection, one write per connection per batch.
//
// Writes go through one FIFO with at most K in flight (K from the command,
// 128 by default), the best way we found to write to many sockets from one
// Deno process, and the way Comet's write scheduler works. Issuing every
// connection's write at once (one promise each) was measured at 10k
// connections to cost about twice the CPU per write (~60k writes/s at 0.7 s
// of user CPU per second, against ~115k/s at 0.2 s with K = 128) and to
// starve some connections for seconds (some writes took over 3 s to
// complete): a ceiling measured that way would be no ceiling. `fanout` with
// k = 0 still writes the old way, for context.
//
// Its RSS per connection is the runtime's floor; its deliveries per second
// are the runtime's ceiling. Driven over stdin/stdout JSON lines by bench/load.ts.
import {
  FRAME,
  HEADER,
  heapSpaces,
  OP_AUTH_REPLY,
  pushFrame,
  serveCommands,
  writeAll,
} from "./_common.ts";

/** Same as Comet's TCP read size, so the floor compares like with like. */
const READ_SIZE = 512;

const AUTH_REPLY = new Uint8Array(HEADER);
{
  const v = new DataView(AUTH_REPLY.buffer);
  v.setInt32(0, HEADER);
  v.setInt16(4, HEADER);
  v.setInt16(6, 1);
  v.setInt32(8, OP_AUTH_REPLY);
  v.setInt32(12, 1);
}

const conns = new Set<Deno.TcpConn>();
let accepted = 0;

async function hold(conn: Deno.TcpConn): Promise<void> {
  conns.add(conn);
  const buf = new Uint8Array(READ_SIZE);
  let replied = false;
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      if (!replied) {
        replied = true;
        await writeAll(conn, AUTH_REPLY);
      }
    }
  } catch {
    // reset by peer
  } finally {
    conns.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

// The harness stops servers with SIGTERM; exiting through Deno.exit lets --cpu-prof write its file.
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
(async () => {
  for (;;) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
    } catch {
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    accepted++;
    try {
      conn.setNoDelay(true);
    } catch {
      // gone already
    }
    void hold(conn);
  }
})();

/** `frames` copies of a freshly stamped 80-byte frame, back to back. */
function batch(id: number, frames: number): Uint8Array {
  const one = pushFrame(id);
  if (frames === 1) return one;
  const data = new Uint8Array(FRAME * frames);
  for (let i = 0; i < frames; i++) data.set(one, i * FRAME);
  return data;
}

/**
 * Writes batches back to back for `ms`: each batch is `frames` copies of a
 * freshly stamped 80-byte frame in one buffer, written to every connection
 * with one write each, in connection order with at most `k` writes in
 * flight (k = 0: all of them issued at once); the next batch starts when
 * every write of this one has completed.
 */
async function fanout(ms: number, frames: number, maxBatches: number, k: number) {
  const list = [...conns];
  const start = performance.now();
  const deadline = start + ms;
  let batches = 0;
  let writes = 0;
  let failed = 0;
  while (performance.now() < deadline && batches < maxBatches) {
    const data = batch(batches, frames);
    if (k === 0) {
      const pending: Promise<void>[] = new Array(list.length);
      for (let i = 0; i < list.length; i++) {
        pending[i] = writeAll(list[i]!, data).catch(() => void failed++);
      }
      await Promise.all(pending);
    } else {
      let next = 0;
      const worker = async () => {
        while (next < list.length) {
          try {
            await writeAll(list[next++]!, data);
          } catch {
            failed++;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(k, list.length) }, worker));
    }
    writes += list.length;
    batches++;
  }
  return {
    batches,
    writes,
    failed,
    frames,
    k,
    conns: list.length,
    elapsedMs: performance.now() - start,
  };
}

/** A connection's writer state in {@linkcode stream}. */
interface Writer {
  conn: Deno.TcpConn;
  /** Frames written (or being written) so far. */
  sent: number;
  queued: boolean;
  busy: boolean;
  dead: boolean;
}

/**
 * The plain-Deno analogue of a push server's writers, with no protocol: a
 * ticker stamps one 80-byte frame every 1000/rate ms for `ms`; each
 * connection's writer sends every frame produced since its last write in one
 * write (a single frame as is, several back to back). A connection with
 * frames to send waits in one FIFO; at most `k` writes are in flight; when
 * a connection's turn comes it writes everything produced since its last
 * write, and when that write completes it goes to the back of the FIFO if
 * more frames arrived meanwhile. This is what "one write per connection per
 * batch" becomes when batches arrive faster than a round of writes takes:
 * the runtime's floor for push-to-delivery latency at a given rate.
 */
async function stream(ms: number, rate: number, k: number) {
  const writers: Writer[] = [...conns].map((conn) => ({
    conn,
    sent: 0,
    queued: false,
    busy: false,
    dead: false,
  }));
  const frames: Uint8Array[] = [];
  // A ring: every writer is in it at most once.
  const ring: (Writer | undefined)[] = new Array(writers.length + 1);
  let head = 0;
  let tail = 0;
  const enqueue = (w: Writer) => {
    w.queued = true;
    ring[tail] = w;
    tail = (tail + 1) % ring.length;
  };
  // Most writers in a round send the same run of frames: join each run once.
  let joinedFor = -1;
  const joined = new Map<number, Uint8Array>();
  const payload = (from: number, to: number): Uint8Array => {
    if (to - from === 1) return frames[from]!;
    if (joinedFor !== to) {
      joined.clear();
      joinedFor = to;
    }
    let data = joined.get(from);
    if (data === undefined) {
      data = new Uint8Array((to - from) * FRAME);
      for (let i = from; i < to; i++) data.set(frames[i]!, (i - from) * FRAME);
      joined.set(from, data);
    }
    return data;
  };
  let inflight = 0;
  let writes = 0;
  let failed = 0;
  let ticking = true;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const settled = () => !ticking && inflight === 0 && head === tail;
  const pump = () => {
    while (inflight < k && head !== tail) {
      const w = ring[head]!;
      ring[head] = undefined;
      head = (head + 1) % ring.length;
      w.queued = false;
      const have = frames.length;
      if (w.dead || w.sent === have) continue;
      const data = payload(w.sent, have);
      w.sent = have;
      w.busy = true;
      inflight++;
      writeAll(w.conn, data).then(() => void writes++, () => {
        failed++;
        w.dead = true;
      }).finally(() => {
        inflight--;
        w.busy = false;
        if (!w.dead && w.sent < frames.length) enqueue(w);
        pump();
        if (settled()) done();
      });
    }
  };
  const start = performance.now();
  const total = Math.min(Math.round((rate * ms) / 1000), 1_000_000);
  for (let n = 0; n < total; n++) {
    const wait = start + (n * 1000) / rate - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    frames.push(pushFrame(n));
    for (const w of writers) if (!w.queued && !w.busy && !w.dead) enqueue(w);
    pump();
  }
  ticking = false;
  if (settled()) done();
  await finished;
  return {
    produced: frames.length,
    writes,
    failed,
    k,
    conns: writers.length,
    elapsedMs: performance.now() - start,
  };
}

const gc = (globalThis as { gc?: () => void }).gc;

console.log(JSON.stringify({ event: "listening", port: (listener.addr as Deno.NetAddr).port }));
await serveCommands(async (cmd) => {
  switch (cmd.cmd) {
    case "count":
      return { conns: conns.size, accepted };
    case "gc":
      if (gc) {
        gc();
        gc();
      }
      return { gc: gc !== undefined, memory: { ...Deno.memoryUsage(), spaces: heapSpaces() } };
    case "fanout":
      return await fanout(
        Number(cmd.ms ?? 1000),
        Number(cmd.frames ?? 1),
        Number(cmd.maxBatches ?? 1e9),
        Number(cmd.k ?? 128),
      );
    case "stream":
      return await stream(
        Number(cmd.ms ?? 1000),
        Number(cmd.rate ?? 10),
        Math.max(1, Number(cmd.k ?? 128)),
      );
    case "exit":
      return {};
    default:
      throw new Error(`Unknown command ${cmd.cmd}`);
  }
});
