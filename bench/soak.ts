/**
 * Soak: the real `comet` command in a child process, thousands of loopback
 * clients churning through it (connect, auth, join a random room, heartbeat,
 * change rooms, watch and unwatch, disconnect, reconnect) over TCP, WebSocket
 * and pkg, with pushes of every kind through the push API meanwhile. It reads
 * `/metrics` at the start, every second, and at the end; once every client has
 * left, the server must be back to no connections, handshakes, timers, rooms,
 * queued frames or read buffers, and its RSS near where it started. A leak, a failed push
 * or an unclean server exit makes it exit 1.
 *
 * ```sh
 * deno task soak                                   # 2,000 connections for 60 s
 * deno task soak --connections 5000 --duration 5m
 * ```
 *
 * Flags: `--connections N` (2000), `--duration D` (60s), `--rooms N` (50),
 * `--life D` (longest a session stays connected; 4s), `--push-interval D`
 * (25ms), `--ws-share F` (0.3), `--pkg-share F` (0.1), `--settle D` (how long
 * the server may take to drop everything after the clients leave; 20s),
 * `--rss-slack MIB` (how far above its start the server's RSS may end; 64),
 * `--rss-growth MIB` (how much it may grow over the second half of the churn
 * when it ends higher than that; 16),
 * `--heap-slack MIB` (the same for its V8 heap in use; 32), `--memory-wait D`
 * (how long to wait for memory to come back down; 30s), `--seed N`,
 * `--workers N` (the server's workers, where the command has `--workers`; 1).
 * Durations read `500ms`, `5s`, `2m`.
 *
 * Memory is judged once the server is idle: V8 gives its heap back only after
 * its memory reducer runs, some seconds into the quiet, so the soak samples
 * for up to `--memory-wait` and keeps the lowest figures. The heap in use must
 * come back near its start. RSS need not: V8 and the allocator keep pages for
 * the next busy spell, so a server whose RSS ends high passes when its RSS
 * stopped growing in the second half of the churn. A leak keeps growing with
 * the sessions served.
 *
 * @module
 */
import { Op } from "../src/protocol/op.ts";
import {
  type Counters,
  type Link,
  pkgLink,
  tcpLink,
  type Transport,
  wsLink,
} from "./soak_links.ts";
import { parseSoakArgs, type SoakOptions } from "./soak_options.ts";
import { noLimits, type Ports, scrape, Server, sum, TOKEN } from "./soak_server.ts";

export { parseSoakArgs, type SoakOptions };

/** What a soak run saw. */
export interface SoakReport {
  /** False on a leak, a failed push or an unclean exit. */
  ok: boolean;
  /** Why not ok. */
  failures: string[];
  /** Sessions opened, by transport. */
  sessions: Record<string, number>;
  /** Pushes sent, by kind. */
  pushes: Record<string, number>;
  /** Pushed messages the clients received. */
  received: number;
  /**
   * Server RSS in bytes at the start, the largest seen, the largest seen in
   * the first half of the churn, and at the end.
   */
  rss: { start: number; peak: number; half: number; end: number };
  /** Server V8 heap in use in bytes, likewise. */
  heap: { start: number; peak: number; end: number };
  /** Most connections seen at once. */
  peakConnections: number;
}

const OPS = [1000, 1001];
const MIB = 2 ** 20;
const utf8 = new TextEncoder();

/** mulberry32. */
class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** Sleeps `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Runs a soak against a freshly started `comet` command and reports what it
 * saw; prints progress to stdout unless `log` is given.
 *
 * @example
 * ```ts ignore
 * import { parseSoakArgs, soak } from "./soak.ts";
 * const report = await soak(parseSoakArgs(["--connections", "200", "--duration", "5s"]));
 * console.log(report.ok);
 * ```
 */
export async function soak(
  options: SoakOptions,
  log: (line: string) => void = console.log,
): Promise<SoakReport> {
  const o = options;
  const failures: string[] = [];
  const sessions: Record<Transport, number> = { tcp: 0, ws: 0, pkg: 0 };
  const pushes: Record<string, number> = { keys: 0, mids: 0, room: 0, all: 0 };
  const counters: Counters = { received: 0, kicked: 0 };
  let pushErrors = 0;
  let connectErrors = 0;
  let authTimeouts = 0;

  const server = new Server(await noLimits(o.workers));
  let ports: Ports;
  try {
    ports = await Promise.race([
      server.ports,
      sleep(30_000).then(() => Promise.reject(new Error("The server did not start in 30 s"))),
    ]);
  } catch (err) {
    await server.stop();
    throw err;
  }
  const start = await scrape(ports.api);
  const rss = {
    start: start.get("process_resident_memory_bytes")!,
    peak: 0,
    half: 0,
    end: 0,
  };
  const heap = { start: start.get("comet_heap_used_bytes")!, peak: 0, end: 0 };
  rss.peak = rss.start;
  heap.peak = heap.start;
  let peakConnections = 0;
  log(
    `soak: ${o.connections} connections for ${o.duration / 1000} s over ${o.rooms} rooms ` +
      `(seed ${o.seed}); server rss at start ${(rss.start / MIB).toFixed(1)} MiB`,
  );

  const stop = new AbortController();
  const signal = stop.signal;
  /** Keys of the authenticated sessions, by slot, for key pushes. */
  const live = new Map<number, string>();

  const slot = async (i: number, r: Rng) => {
    // Spread the first connects over a second or two rather than one burst.
    await sleep(r.int(Math.min(2_000, o.duration / 4)), signal);
    let generation = 0;
    while (!signal.aborted) {
      const roll = r.next();
      const transport: Transport = roll < o.wsShare
        ? "ws"
        : roll < o.wsShare + o.pkgShare
        ? "pkg"
        : "tcp";
      // Now and then take another slot's key: the server replaces that connection.
      const key = r.int(50) === 0 ? `k${r.int(o.connections)}-0` : `k${i}-${generation++ % 3}`;
      const auth = utf8.encode(JSON.stringify({
        mid: i + 1,
        key,
        room_id: `live://r${r.int(o.rooms)}`,
        platform: transport,
        accepts: OPS,
      }));
      let link: Link;
      try {
        link = transport === "ws"
          ? wsLink(ports.ws, auth, counters)
          : transport === "pkg"
          ? await pkgLink(ports.pkg, auth, counters)
          : await tcpLink(ports.tcp, auth, counters);
      } catch {
        connectErrors++;
        await sleep(100 + r.int(400), signal);
        continue;
      }
      sessions[transport]++;
      // A few walk away before the auth reply.
      if (r.int(30) === 0) {
        link.close();
        await link.closed;
        continue;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ok = await Promise.race([
        link.authed,
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 10_000))),
      ]);
      clearTimeout(timer);
      if (!ok) {
        authTimeouts++;
        link.close();
        await link.closed;
        continue;
      }
      live.set(i, key);
      const until = performance.now() + 200 + r.int(o.life);
      let down = false;
      void link.closed.then(() => (down = true));
      while (!signal.aborted && !down && performance.now() < until) {
        await sleep(200 + r.int(800), signal);
        if (signal.aborted || down) break;
        const what = r.int(20);
        if (what < 12) link.send(Op.Heartbeat);
        else if (what < 15) link.send(Op.ChangeRoom, utf8.encode(`live://r${r.int(o.rooms)}`));
        else if (what < 16) link.send(Op.ChangeRoom, new Uint8Array(0));
        else if (what < 17) link.send(Op.Sub, utf8.encode("1002,1003"));
        else if (what < 18) link.send(Op.Unsub, utf8.encode("1003"));
        else link.send(Op.SendMsg, utf8.encode("hello"));
      }
      if (live.get(i) === key) live.delete(i);
      link.close();
      await link.closed;
      await sleep(r.int(200), signal);
    }
  };

  const pusher = async (r: Rng) => {
    const kinds = ["room", "keys", "mids", "all"] as const;
    for (let n = 0; !signal.aborted; n++) {
      const kind = kinds[n % kinds.length]!;
      const op = OPS[r.int(OPS.length)]!;
      let query: string;
      if (kind === "room") {
        query = `type=live&room=r${r.int(o.rooms)}`;
      } else if (kind === "keys" || kind === "mids") {
        const slots = [...live.keys()];
        const picked = Array.from(
          { length: 1 + r.int(10) },
          () => slots[r.int(slots.length)] ?? 0,
        );
        query = kind === "keys"
          ? picked.map((s) => `keys=${encodeURIComponent(live.get(s) ?? "none")}`).join("&")
          : picked.map((s) => `mids=${s + 1}`).join("&");
      } else {
        query = r.int(4) === 0 ? "speed=100000" : "";
      }
      try {
        const res = await fetch(
          `http://127.0.0.1:${ports.api}/goim/push/${kind}?operation=${op}&${query}`,
          {
            method: "POST",
            headers: { authorization: `Bearer ${TOKEN}` },
            body: `soak push ${n}`,
          },
        );
        const body = await res.json();
        if (body.code !== 0) {
          pushErrors++;
          if (pushErrors <= 5) log(`push ${kind} failed: ${res.status} ${JSON.stringify(body)}`);
        }
        pushes[kind]!++;
      } catch (err) {
        pushErrors++;
        if (pushErrors <= 5) log(`push ${kind} failed: ${(err as Error).message}`);
      }
      await sleep(o.pushInterval, signal);
    }
  };

  const sampler = async () => {
    while (!signal.aborted) {
      await sleep(1_000, signal);
      try {
        const m = await scrape(ports.api);
        rss.peak = Math.max(rss.peak, m.get("process_resident_memory_bytes") ?? 0);
        if (performance.now() - started < o.duration / 2) rss.half = rss.peak;
        heap.peak = Math.max(heap.peak, m.get("comet_heap_used_bytes") ?? 0);
        peakConnections = Math.max(peakConnections, sum(m, "comet_connections"));
      } catch {
        // The next sample will do.
      }
    }
  };

  const rng = new Rng(o.seed);
  const started = performance.now();
  const running = [
    ...Array.from({ length: o.connections }, (_, i) => slot(i, new Rng(rng.int(2 ** 31)))),
    pusher(new Rng(rng.int(2 ** 31))),
    sampler(),
  ];
  const progress = setInterval(() => {
    const s = sessions.tcp + sessions.ws + sessions.pkg;
    log(
      `  ${((performance.now() - started) / 1000).toFixed(0)} s: ${live.size} live, ` +
        `${s} sessions, ${Object.values(pushes).reduce((a, b) => a + b, 0)} pushes, ` +
        `${counters.received} received, server rss ${(rss.peak / MIB).toFixed(1)} MiB peak`,
    );
  }, 10_000);
  await sleep(o.duration);
  stop.abort();
  clearInterval(progress);
  await Promise.all(running);

  // Every client has left: the server must come back to nothing.
  const settleBy = performance.now() + o.settle;
  let end = await scrape(ports.api);
  const figures = (m: Map<string, number>) => ({
    connections: sum(m, "comet_connections"),
    handshaking: sum(m, "comet_handshaking"),
    timers: sum(m, "comet_timers"),
    rooms: sum(m, "comet_rooms"),
    queue: sum(m, "comet_queue_depth"),
    readBuffers: sum(m, "comet_read_buffers"),
  });
  while (
    Object.values(figures(end)).some((v) => v !== 0) && performance.now() < settleBy
  ) {
    await sleep(250);
    end = await scrape(ports.api);
  }
  const left = figures(end);
  for (const [name, v] of Object.entries(left)) {
    if (v !== 0) failures.push(`leak: ${name} is ${v} after every client left`);
  }
  // With workers, the figures are sums over the bus: one that did not answer would hide its own.
  const missing = sum(end, "comet_workers_missing");
  if (missing !== 0) failures.push(`${missing} worker(s) did not answer the last /metrics`);
  // Memory comes back once V8's memory reducer has run in the quiet: keep the lowest samples.
  // The heap is read after a full collection, so that it counts live objects only.
  await server.collect();
  end = await scrape(ports.api);
  rss.end = end.get("process_resident_memory_bytes")!;
  heap.end = end.get("comet_heap_used_bytes")!;
  const high = () =>
    rss.end > rss.start + o.rssSlack * MIB || heap.end > heap.start + o.heapSlack * MIB;
  const memoryBy = performance.now() + o.memoryWait;
  while (high() && performance.now() < memoryBy) {
    await sleep(1_000);
    await server.collect();
    const m = await scrape(ports.api);
    rss.end = Math.min(rss.end, m.get("process_resident_memory_bytes")!);
    heap.end = Math.min(heap.end, m.get("comet_heap_used_bytes")!);
  }
  // V8 and the allocator keep pages for reuse after a busy spell, so RSS may
  // not come back down; what a leak does is keep growing with the work done.
  const growth = rss.peak - rss.half;
  if (rss.end > rss.start + o.rssSlack * MIB && growth > o.rssGrowth * MIB) {
    failures.push(
      `leak: rss ended at ${(rss.end / MIB).toFixed(1)} MiB, more than ${o.rssSlack} MiB ` +
        `above its start (${(rss.start / MIB).toFixed(1)} MiB), and grew by ` +
        `${(growth / MIB).toFixed(1)} MiB over the second half of the churn ` +
        `(more than ${o.rssGrowth} MiB)`,
    );
  }
  if (heap.end > heap.start + o.heapSlack * MIB) {
    failures.push(
      `leak: heap ended at ${(heap.end / MIB).toFixed(1)} MiB, more than ${o.heapSlack} MiB ` +
        `above its start (${(heap.start / MIB).toFixed(1)} MiB)`,
    );
  }
  if (pushErrors > 0) failures.push(`${pushErrors} pushes failed`);
  const totalSessions = sessions.tcp + sessions.ws + sessions.pkg;
  if (totalSessions < o.connections) failures.push(`only ${totalSessions} sessions opened`);
  if (counters.received === 0) failures.push("no push reached any client");

  const status = await server.stop();
  if (status.code !== 0) failures.push(`the server exited with status ${status.code}`);

  log(
    `sessions: ${totalSessions} (tcp ${sessions.tcp}, ws ${sessions.ws}, pkg ${sessions.pkg}); ` +
      `connect errors ${connectErrors}, auth timeouts ${authTimeouts}, kicked ${counters.kicked}`,
  );
  log(
    `pushes: ${Object.entries(pushes).map(([k, v]) => `${k} ${v}`).join(", ")}; ` +
      `${counters.received} received by clients; peak ${peakConnections} connections`,
  );
  for (const [name, f] of [["rss", rss], ["heap in use", heap]] as const) {
    log(
      `server ${name}: start ${(f.start / MIB).toFixed(1)} MiB, peak ${
        (f.peak / MIB).toFixed(1)
      } ` +
        `MiB, end ${(f.end / MIB).toFixed(1)} MiB`,
    );
  }
  log(
    `server rss grew by ${(growth / MIB).toFixed(1)} MiB over the second half of the churn ` +
      `(peak ${(rss.half / MIB).toFixed(1)} MiB in the first half)`,
  );
  log(
    `at the end: connections ${left.connections}, handshaking ${left.handshaking}, ` +
      `timers ${left.timers}, rooms ${left.rooms}, queued ${left.queue}, ` +
      `read buffers ${left.readBuffers}`,
  );
  if (server.complaints.length > 0) {
    log(`server warnings and errors: ${server.complaints.length}, first:`);
    for (const line of server.complaints.slice(0, 5)) log(`  ${line}`);
  }
  log(failures.length === 0 ? "soak: ok, no leaks" : `soak: FAILED\n  ${failures.join("\n  ")}`);
  return {
    ok: failures.length === 0,
    failures,
    sessions,
    pushes,
    received: counters.received,
    rss,
    heap,
    peakConnections,
  };
}

if (import.meta.main) {
  let options: SoakOptions;
  try {
    options = parseSoakArgs(Deno.args);
  } catch (err) {
    console.error(`soak: ${(err as Error).message}`);
    Deno.exit(2);
  }
  const report = await soak(options);
  Deno.exit(report.ok ? 0 : 1);
}
