// The room and key pushes of the fan-out phases: 64-byte stamped bodies into
// Comet's push API from keep-alive connections.
import { nowMs, pushBody, sleep } from "./_common.ts";
import { HttpClient, isOk as ok } from "./http_client.ts";

/** What {@linkcode pushRoom} sent and got back. */
export interface PushRun {
  ok: number;
  failed: number;
  elapsedMs: number;
  startAt: number;
  rate?: number;
  late?: number;
}

/** Room pushes of 64-byte stamped bodies: as fast as answered, or paced at `rate` per second. */
export async function pushRoom(
  apiPort: number,
  ms: number,
  concurrency: number,
  rate?: number,
): Promise<PushRun> {
  const target = "/goim/push/room?operation=1000&type=live&room=bench";
  const clients = await Promise.all(
    Array.from({ length: concurrency }, () => HttpClient.connect(apiPort)),
  );
  let id = 0;
  let okCount = 0;
  let failed = 0;
  let late = 0;
  const startAt = nowMs();
  const start = performance.now();
  const deadline = start + ms;
  const send = async (c: HttpClient) => {
    try {
      if (ok(await c.post(target, pushBody(id++)))) okCount++;
      else failed++;
    } catch {
      failed++;
    }
  };
  if (rate === undefined) {
    await Promise.all(clients.map(async (c) => {
      while (performance.now() < deadline) await send(c);
    }));
  } else {
    // One push every 1000/rate ms on whichever connection is free.
    const free = [...clients];
    const inflight = new Set<Promise<void>>();
    const total = Math.min(Math.round((rate * ms) / 1000), 1_000_000);
    for (let k = 0; k < total && performance.now() < deadline + 1000; k++) {
      const due = start + (k * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      else if (wait < -5) late++;
      while (free.length === 0) await Promise.race(inflight);
      const c = free.pop()!;
      const p = send(c).then(() => {
        inflight.delete(p);
        free.push(c);
      });
      inflight.add(p);
    }
    await Promise.all(inflight);
  }
  const elapsedMs = performance.now() - start;
  for (const c of clients) c.close();
  return { ok: okCount, failed, elapsedMs, startAt, ...(rate !== undefined && { rate, late }) };
}

/** What {@linkcode pushKeys} sent and got back. */
export interface KeysRun {
  ok: number;
  failed: number;
  elapsedMs: number;
  perSec: number;
}

/** Single-key pushes round-robin over `keys` from `workers` keep-alive connections. */
export async function pushKeys(
  apiPort: number,
  ms: number,
  workers: number,
  keys: string[],
): Promise<KeysRun> {
  const clients = await Promise.all(
    Array.from({ length: workers }, () => HttpClient.connect(apiPort)),
  );
  let n = 0;
  let okCount = 0;
  let failed = 0;
  const start = performance.now();
  const deadline = start + ms;
  await Promise.all(clients.map(async (c) => {
    while (performance.now() < deadline) {
      const key = keys[n++ % keys.length]!;
      try {
        const r = await c.post(`/goim/push/keys?operation=1000&keys=${key}`, pushBody(n));
        if (ok(r)) okCount++;
        else failed++;
      } catch {
        failed++;
      }
    }
  }));
  const elapsedMs = performance.now() - start;
  for (const c of clients) c.close();
  return { ok: okCount, failed, elapsedMs, perSec: (okCount / elapsedMs) * 1000 };
}
