/**
 * How fast a push crosses from one worker to another, four ways, for a body
 * of 100 B and 4 KiB: messages per second from the first send until the
 * receiving worker has turned the last one back into a `Push`.
 *
 * - `broadcast-object`: `BroadcastChannel`, the push as a plain object (what
 *   `BusCluster` posts); the clone copies the body.
 * - `broadcast-bytes`: `BroadcastChannel`, the push encoded as one envelope
 *   (`src/cluster/envelope.ts`), decoded on arrival.
 * - `port-transfer`: a `MessagePort`, the envelope's `ArrayBuffer` transferred
 *   (no copy in the post; one in the encode).
 * - `sab-ring`: a `SharedArrayBuffer` ring, one producer and one consumer,
 *   `Atomics.notify` / `Atomics.waitAsync`; the consumer copies each
 *   envelope out of the ring and decodes it.
 *
 * Deno's `BroadcastChannel` drops what a receiver has not read past 256
 * messages, so every mode sends in windows of {@linkcode _WINDOW} and waits
 * for the receiver's ack of each (over the worker's own port) before the
 * next; the same for all four, so that they compare.
 *
 * ```sh
 * deno run --allow-read bench/bus_bench.ts [rounds]
 * ```
 *
 * @module
 */
import { decodeEnvelope, encodeEnvelope } from "../src/cluster/envelope.ts";
import type { Push } from "../src/server/push.ts";

const _RECEIVER = "bus-bench-receiver";
const _CHANNEL = "bus-bench";
const _RING_BYTES = 4 << 20;
/** Messages in flight at most: under the channel's 256. */
const _WINDOW = 128;
/** Control words: [0] bytes written, [1] bytes read (both grow; positions are modulo the ring). */
const _CONTROL = 16;
type _Mode = "broadcast-object" | "broadcast-bytes" | "port-transfer" | "sab-ring";
const _MODES: readonly _Mode[] = [
  "broadcast-object",
  "broadcast-bytes",
  "port-transfer",
  "sab-ring",
];

interface _Setup {
  mode: _Mode;
  count: number;
  port?: MessagePort;
  ring?: SharedArrayBuffer;
}

const _isReceiver = (globalThis as { name?: string }).name === _RECEIVER;

/** The receiving worker: counts what arrives in the mode it is told, then says done. */
function _receive(): void {
  const scope = globalThis as unknown as {
    onmessage: ((e: MessageEvent<_Setup>) => void) | null;
    postMessage(m: unknown): void;
  };
  let channel: BroadcastChannel | undefined;
  scope.onmessage = ({ data: setup }) => {
    let got = 0;
    let bytes = 0;
    const done = () => {
      channel?.close();
      channel = undefined;
      setup.port?.close();
      scope.postMessage({ got, bytes });
    };
    const took = (push: Push) => {
      bytes += push.body.length;
      if (++got === setup.count) done();
      else if (got % _WINDOW === 0) scope.postMessage(got);
    };
    switch (setup.mode) {
      case "broadcast-object":
      case "broadcast-bytes":
        channel = new BroadcastChannel(_CHANNEL);
        channel.onmessage = setup.mode === "broadcast-object"
          ? (e) => took((e.data as { push: Push }).push)
          : (e) => took(decodeEnvelope(e.data as Uint8Array));
        scope.postMessage("ready");
        return;
      case "port-transfer":
        setup.port!.onmessage = (e) => took(decodeEnvelope(new Uint8Array(e.data as ArrayBuffer)));
        scope.postMessage("ready");
        return;
      case "sab-ring":
        scope.postMessage("ready");
        void _drainRing(setup.ring!, setup.count, took).then(() => {});
    }
  };
}

/** The consumer side of the ring: reads records until `count` have arrived. */
async function _drainRing(
  ring: SharedArrayBuffer,
  count: number,
  took: (push: Push) => void,
): Promise<void> {
  const control = new Int32Array(ring, 0, 2);
  const data = new Uint8Array(ring, _CONTROL);
  const view = new DataView(ring, _CONTROL);
  let read = 0;
  let got = 0;
  while (got < count) {
    const written = Atomics.load(control, 0);
    if (written === read) {
      const wait = Atomics.waitAsync(control, 0, written);
      if (wait.async) await wait.value;
      continue;
    }
    while (read !== written) {
      const at = read % data.length;
      const length = view.getInt32(at);
      if (length < 0) {
        read += data.length - at;
        continue;
      }
      // Copied out: the slot is the producer's again once the read index moves.
      took(decodeEnvelope(data.slice(at + 4, at + 4 + length)));
      got++;
      read += 4 + ((length + 3) & ~3);
    }
    Atomics.store(control, 1, read);
    Atomics.notify(control, 1);
  }
}

/** The producer side: writes one record, waiting while the ring is full. */
async function _writeRing(
  control: Int32Array,
  data: Uint8Array,
  view: DataView,
  state: { written: number },
  record: Uint8Array,
): Promise<void> {
  const need = 4 + ((record.length + 3) & ~3);
  for (;;) {
    let at = state.written % data.length;
    const wrap = data.length - at < need ? data.length - at : 0;
    const read = Atomics.load(control, 1);
    if (state.written + wrap + need - read > data.length) {
      const wait = Atomics.waitAsync(control, 1, read);
      if (wait.async) await wait.value;
      continue;
    }
    if (wrap > 0) {
      view.setInt32(at, -1);
      state.written += wrap;
      at = 0;
    }
    view.setInt32(at, record.length);
    data.set(record, at + 4);
    state.written += need;
    Atomics.store(control, 0, state.written);
    Atomics.notify(control, 0);
    return;
  }
}

let _senderChannel: BroadcastChannel | undefined;

/** One sending channel for every run: a new one after the last was closed fails to post. */
function _sender(): BroadcastChannel {
  return _senderChannel ??= new BroadcastChannel(_CHANNEL);
}

/** Sends `count` pushes of `size` bytes to a fresh receiver; resolves with messages per second. */
async function _run(mode: _Mode, size: number, count: number): Promise<number> {
  const worker = new Worker(import.meta.url, { type: "module", name: _RECEIVER });
  const replies: unknown[] = [];
  const waiters: (() => void)[] = [];
  worker.onmessage = (e) => {
    replies.push(e.data);
    waiters.shift()?.();
  };
  const next = () =>
    replies.length > 0
      ? Promise.resolve(replies.shift())
      : new Promise<unknown>((r) => waiters.push(() => r(replies.shift())));
  const body = new Uint8Array(size).fill(7);
  const push = { kind: "room", op: 1000, room: "live://bench", body } as const;
  const setup: _Setup = { mode, count };
  const channel = mode.startsWith("broadcast") ? _sender() : undefined;
  let port: MessagePort | undefined;
  let ring: SharedArrayBuffer | undefined;
  if (mode === "port-transfer") {
    const pair = new MessageChannel();
    port = pair.port1;
    setup.port = pair.port2;
  } else if (mode === "sab-ring") {
    ring = setup.ring = new SharedArrayBuffer(_CONTROL + _RING_BYTES);
  }
  worker.postMessage(setup, setup.port ? [setup.port] : []);
  await next();
  const started = performance.now();
  const control = ring && new Int32Array(ring, 0, 2);
  const data = ring && new Uint8Array(ring, _CONTROL);
  const view = ring && new DataView(ring, _CONTROL);
  const state = { written: 0 };
  let reply: unknown;
  for (let sent = 0; sent < count;) {
    const end = Math.min(count, sent + _WINDOW);
    for (; sent < end; sent++) {
      switch (mode) {
        case "broadcast-object":
          channel!.postMessage({ t: "push", w: 0, i: "x", s: sent, push });
          break;
        case "broadcast-bytes":
          channel!.postMessage(encodeEnvelope({ ...push, from: "x" }));
          break;
        case "port-transfer": {
          const bytes = encodeEnvelope({ ...push, from: "x" });
          const buffer = bytes.buffer as ArrayBuffer;
          port!.postMessage(buffer, [buffer]);
          break;
        }
        case "sab-ring":
          await _writeRing(control!, data!, view!, state, encodeEnvelope({ ...push, from: "x" }));
      }
    }
    reply = await next();
  }
  const { got } = reply as { got: number };
  const seconds = (performance.now() - started) / 1000;
  port?.close();
  worker.terminate();
  if (got !== count) throw new Error(`Receiver got ${got} of ${count}`);
  return count / seconds;
}

async function _main(): Promise<void> {
  const rounds = Number(Deno.args[0] ?? 3);
  console.log(`| body | ${_MODES.join(" | ")} |`);
  console.log(`|---|${_MODES.map(() => "---:").join("|")}|`);
  for (const [size, count] of [[100, 100_000], [4096, 40_000]] as const) {
    const best: number[] = [];
    for (const mode of _MODES) {
      let top = 0;
      for (let r = 0; r < rounds; r++) top = Math.max(top, await _run(mode, size, count));
      best.push(top);
    }
    const cells = best.map((n) => `${Math.round(n).toLocaleString("en-US")}/s`);
    console.log(`| ${size} B | ${cells.join(" | ")} |`);
  }
  _senderChannel?.close();
}

if (_isReceiver) _receive();
else if (import.meta.main) await _main();
