// Micro benchmarks of Comet's hot paths. Run: deno bench bench/micro_bench.ts
import { encodeFrame, type Frame } from "../src/protocol/frame.ts";
import { FrameDecoder } from "../src/protocol/decoder.ts";
import { TimerHeap } from "../src/server/timer_heap.ts";
import { FrameQueue } from "../src/server/frame_queue.ts";
import { Comet } from "../src/server/comet.ts";
import { MemoryHistory } from "../src/server/memory_history.ts";
import type { ConnInfo, Wire } from "../src/server/wire.ts";

const BODY = new Uint8Array(64).fill(0x2e);

// --- frame encode -----------------------------------------------------------

Deno.bench({
  name: "encodeFrame, 64-byte body",
  group: "frame",
  baseline: true,
  fn() {
    encodeFrame(1000, 0, BODY);
  },
});

// --- frame decode -----------------------------------------------------------

const FRAME_LEN = 16 + BODY.length;
const PER_CHUNK = Math.floor(65536 / FRAME_LEN); // 819 frames, 65,520 bytes
const CHUNK = new Uint8Array(PER_CHUNK * FRAME_LEN);
{
  const one = encodeFrame(1000, 0, BODY);
  for (let i = 0; i < PER_CHUNK; i++) CHUNK.set(one, i * FRAME_LEN);
}
const decoder = new FrameDecoder();

Deno.bench({
  name: `FrameDecoder, 64 KiB chunk of ${PER_CHUNK} 64-byte-body frames`,
  group: "frame",
  fn() {
    decoder.push(CHUNK);
    let n = 0;
    for (let f: Frame | undefined = decoder.next(); f; f = decoder.next()) n++;
    if (n !== PER_CHUNK) throw new Error(`decoded ${n}`);
  },
});

// --- timer heap -------------------------------------------------------------

const TIMERS = 10_000;
// A fake clock: nothing ever expires, and the one real timeout the heap arms
// is cleared when the heap closes at the end.
let clock = 0;
const heap = new TimerHeap<number>({ onExpire() {}, now: () => clock });
const timers = Array.from({ length: TIMERS }, (_, i) => heap.add(i, 600_000 + i));
// Heartbeats arrive in a roughly random order.
const order = Array.from({ length: TIMERS }, (_, i) => (i * 7919) % TIMERS);

Deno.bench({
  name: "TimerHeap reset of 10k timers (heartbeat renewals)",
  group: "timer heap",
  fn() {
    clock += 1;
    for (let i = 0; i < TIMERS; i++) heap.reset(timers[order[i]!]!, 600_000);
  },
});

// --- frame queue (a channel's own queue) -------------------------------------

const queue = new FrameQueue();

Deno.bench({
  name: "FrameQueue push + shift, 1 frame",
  group: "queue",
  baseline: true,
  fn() {
    queue.push(BODY, "alone");
    queue.shift();
  },
});

Deno.bench({
  name: "FrameQueue push x128 then shift x128",
  group: "queue",
  fn() {
    for (let i = 0; i < 128; i++) queue.push(BODY, "alone");
    for (let i = 0; i < 128; i++) queue.shift();
  },
});

// --- room push over a fake in-memory wire ------------------------------------

const MEMBERS = 10_000;

/** A wire with no socket: auth first, then reads that wait for close; writes succeed at once. */
class FakeWire implements Wire {
  readonly info: ConnInfo = {
    transport: "fake",
    remoteAddr: { hostname: "127.0.0.1", port: 1 },
  };
  written = 0;
  #auth: Frame | undefined;
  #closed = false;
  #wake: ((f: null) => void) | undefined;

  constructor(i: number) {
    const body = new TextEncoder().encode(JSON.stringify({
      mid: i + 1,
      key: `k${i}`,
      room_id: "live://bench",
      accepts: [1000],
    }));
    this.#auth = { ver: 1, op: 7, seq: 1, body };
  }

  read(): Promise<Frame | null> {
    const f = this.#auth;
    if (f) {
      this.#auth = undefined;
      return Promise.resolve(f);
    }
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => (this.#wake = resolve));
  }

  encode(chunks: readonly Uint8Array[], count: number, bytes: number): Uint8Array {
    if (count === 1) return chunks[0]!;
    const out = new Uint8Array(bytes);
    let at = 0;
    for (let i = 0; i < count; i++) {
      out.set(chunks[i]!, at);
      at += chunks[i]!.length;
    }
    return out;
  }

  write(data: Uint8Array): Promise<void> {
    this.written += data.length;
    return Promise.resolve();
  }

  close(): void {
    this.#closed = true;
    this.#wake?.(null);
  }
}

const comet = new Comet({ heartbeatTimeout: 600_000, queueSize: 1024, slow: "drop" });
const wires = Array.from({ length: MEMBERS }, (_, i) => new FakeWire(i));
for (const w of wires) void comet.serve(w);
// Let every session authenticate and join the room.
for (let i = 0; i < 100 && comet.roomOnline("live://bench") < MEMBERS; i++) {
  await new Promise((r) => setTimeout(r, 10));
}
if (comet.roomOnline("live://bench") !== MEMBERS) throw new Error("members did not join");
const drain = () => new Promise((r) => setTimeout(r, 0));

Deno.bench({
  name: "Comet.pushRoom to 10,000 members: hub -> queues only",
  group: "room push",
  baseline: true,
  async fn(b) {
    b.start();
    const n = comet.pushRoom("live://bench", 1000, BODY);
    b.end();
    if (n !== MEMBERS) throw new Error(`queued to ${n}`);
    await drain(); // writers empty the queues outside the measurement
  },
});

Deno.bench({
  name: "Comet.pushRoom to 10,000 members + writers drain to fake wires",
  group: "room push",
  async fn() {
    comet.pushRoom("live://bench", 1000, BODY);
    await drain();
  },
});

// Release the heap's and the hub's timers once every bench has run.
globalThis.addEventListener("unload", () => {
  heap.close();
  void comet.close(0);
});

// --- history ----------------------------------------------------------------

// A room's stream at its size bound: every append also drops the oldest push.
const roomHistory = new MemoryHistory({ size: 1000, ttl: 120_000 });
Deno.bench({
  name: "MemoryHistory.append, one room at its 1,000-push bound",
  group: "history",
  baseline: true,
  fn() {
    roomHistory.append("room:live://1", 1000, BODY);
  },
});

// The same users without a cap: what the cap's account and evictions add.
const openHistory = new MemoryHistory({ size: 1000, ttl: 120_000 });
let nextOpenMid = 0;
Deno.bench({
  name: "MemoryHistory.append, 100,000 users, no cap",
  group: "history",
  fn() {
    openHistory.append(`mid:${nextOpenMid++ % 100_000}`, 1000, BODY);
  },
});

// 100,000 users under a cap they fill: appends that evict the stalest streams' pushes.
const cappedHistory = new MemoryHistory({ size: 1000, ttl: 120_000, memory: 8 * 1024 * 1024 });
let nextMid = 0;
Deno.bench({
  name: "MemoryHistory.append, 100,000 users past an 8 MiB cap",
  group: "history",
  fn() {
    cappedHistory.append(`mid:${nextMid++ % 100_000}`, 1000, BODY);
  },
});
