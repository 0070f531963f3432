// The runtime baseline: a plain Deno TCP server with no protocol logic. It
// accepts connections, keeps one pending read per connection with a small
// buffer, answers a client's first bytes with one pre-encoded 16-byte op-8
// frame (so a connect + auth round trip costs the client what it costs
// against Comet), and on command writes pre-encoded 80-byte goim frames to
// every connection, one write per connection per batch.
//
// Its RSS per connection is the runtime's floor; its deliveries per second
// are the runtime's ceiling. Driven over stdin/stdout JSON lines by bench/load.ts.
import { FRAME, HEADER, OP_AUTH_REPLY, pushFrame, serveCommands, writeAll } from "./_common.ts";

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

/**
 * Writes batches back to back for `ms`: each batch is `frames` copies of a
 * freshly stamped 80-byte frame in one buffer, written to every connection
 * with one write each; the next batch starts when every write of this one
 * has completed.
 */
async function fanout(ms: number, frames: number, maxBatches: number) {
  const list = [...conns];
  const start = performance.now();
  const deadline = start + ms;
  let batches = 0;
  let writes = 0;
  let failed = 0;
  while (performance.now() < deadline && batches < maxBatches) {
    const one = pushFrame(batches);
    let data = one;
    if (frames > 1) {
      data = new Uint8Array(FRAME * frames);
      for (let i = 0; i < frames; i++) data.set(one, i * FRAME);
    }
    const pending: Promise<void>[] = new Array(list.length);
    for (let i = 0; i < list.length; i++) {
      pending[i] = writeAll(list[i]!, data).catch(() => void failed++);
    }
    await Promise.all(pending);
    writes += list.length;
    batches++;
  }
  return {
    batches,
    writes,
    failed,
    frames,
    conns: list.length,
    elapsedMs: performance.now() - start,
  };
}

/**
 * The plain-Deno analogue of a push server's writers, with no protocol: a
 * ticker stamps one 80-byte frame every 1000/rate ms for `ms`; each
 * connection's writer sends every frame produced since its last write in one
 * write (a single frame as is, several back to back), then waits for the next.
 * This is what "one write per connection per batch" becomes when batches
 * arrive faster than a round of writes takes: the runtime's floor for
 * push-to-delivery latency at a given rate.
 */
async function stream(ms: number, rate: number) {
  const list = [...conns];
  const frames: Uint8Array[] = [];
  // One shared promise per tick wakes every idle writer.
  let release!: () => void;
  let tick = new Promise<void>((r) => (release = r));
  const signal = () => {
    const r = release;
    tick = new Promise<void>((res) => (release = res));
    r();
  };
  let ticking = true;
  let writes = 0;
  let failed = 0;
  const start = performance.now();
  const total = Math.min(Math.round((rate * ms) / 1000), 1_000_000);
  const ticker = (async () => {
    for (let k = 0; k < total; k++) {
      const wait = start + (k * 1000) / rate - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      frames.push(pushFrame(k));
      signal();
    }
    ticking = false;
    signal();
  })();
  const next = () => tick;
  const writer = async (conn: Deno.TcpConn) => {
    let sent = 0;
    for (;;) {
      const have = frames.length;
      if (sent === have) {
        if (!ticking) return;
        await next();
        continue;
      }
      let data = frames[sent]!;
      if (have - sent > 1) {
        data = new Uint8Array((have - sent) * FRAME);
        for (let i = sent; i < have; i++) data.set(frames[i]!, (i - sent) * FRAME);
      }
      sent = have;
      try {
        await writeAll(conn, data);
        writes++;
      } catch {
        failed++;
        return;
      }
    }
  };
  await Promise.all([ticker, ...list.map(writer)]);
  return {
    produced: frames.length,
    writes,
    failed,
    conns: list.length,
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
      return { gc: gc !== undefined, memory: Deno.memoryUsage() };
    case "fanout":
      return await fanout(
        Number(cmd.ms ?? 1000),
        Number(cmd.frames ?? 1),
        Number(cmd.maxBatches ?? 1e9),
      );
    case "stream":
      return await stream(Number(cmd.ms ?? 1000), Number(cmd.rate ?? 10));
    case "exit":
      return {};
    default:
      throw new Error(`Unknown command ${cmd.cmd}`);
  }
});
