// The real Comet CLI (src/cli.ts `main`, same flags) plus two hooks for the
// harness: SIGUSR2 runs a full garbage collection (only with
// --v8-flags=--expose-gc) and prints Deno.memoryUsage() as one JSON line on
// stderr, so the harness can split RSS into V8 heap and the rest; SIGWINCH
// (SIGUSR1 would open Deno's inspector) prints the connections each worker holds (`--workers N`). With workers,
// each Worker runs bench/comet_gc_worker.ts, which is the command's worker
// entry plus a listener that collects its own isolate's garbage when asked:
// every isolate of the process is collected before RSS is read, and the
// heap figures are their sums. Nothing else differs from `deno run src/cli.ts`.
import { main } from "../src/cli.ts";
import { heapSpaces, sleep } from "./_common.ts";
import { BENCH_GC_CHANNEL, type WorkerMemory } from "./comet_gc_worker.ts";

const gc = (globalThis as { gc?: () => void }).gc;
/** The command's Workers, in the order the supervisor started them (restarts replace). */
const workers: Worker[] = [];
const Original = globalThis.Worker;
globalThis.Worker = class extends Original {
  constructor(url: string | URL, options?: WorkerOptions) {
    const entry = String(url).endsWith("/src/workers/worker_main.ts");
    super(entry ? new URL("./comet_gc_worker.ts", import.meta.url) : url, options);
    if (entry) workers.push(this);
  }
  override terminate(): void {
    const i = workers.indexOf(this);
    if (i >= 0) workers.splice(i, 1);
    super.terminate();
  }
};

/** Every worker's own memory after a GC, or what answered within 3 s. */
async function _workersMemory(): Promise<WorkerMemory[]> {
  if (workers.length === 0) return [];
  const bc = new BroadcastChannel(BENCH_GC_CHANNEL);
  const got: WorkerMemory[] = [];
  bc.onmessage = (e: MessageEvent<WorkerMemory>) => void got.push(e.data);
  // A sender does not hear itself; only the workers answer.
  bc.postMessage("gc");
  for (let t = 0; t < 60 && got.length < workers.length; t++) await sleep(50);
  bc.close();
  return got;
}

Deno.addSignalListener("SIGUSR2", async () => {
  const inWorkers = await _workersMemory();
  gc?.();
  gc?.();
  const own = Deno.memoryUsage();
  const sum = (k: "heapTotal" | "heapUsed" | "external") =>
    own[k] + inWorkers.reduce((n, w) => n + w[k], 0);
  console.error(
    `BENCH_MEMORY ${
      JSON.stringify({
        ...own,
        heapTotal: sum("heapTotal"),
        heapUsed: sum("heapUsed"),
        external: sum("external"),
        spaces: heapSpaces(),
        ...(workers.length ? { isolates: 1 + inWorkers.length } : {}),
        at: Date.now(),
      })
    }`,
  );
});

// The supervisor's own `stats` request (src/workers/messages.ts): a reply it did
// not ask for finds its queue empty and is dropped there; this listener reads it.
Deno.addSignalListener("SIGWINCH", async () => {
  const conns = await Promise.all(workers.map((w) =>
    new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => done(null), 3_000);
      const done = (n: number | null) => {
        clearTimeout(timer);
        w.removeEventListener("message", heard);
        resolve(n);
      };
      const heard = (e: MessageEvent<{ type?: string; connections?: number }>) => {
        if (e.data?.type === "stats") done(e.data.connections ?? null);
      };
      w.addEventListener("message", heard);
      w.postMessage({ type: "stats" });
    })
  ));
  console.error(`BENCH_WORKERS ${JSON.stringify({ conns, at: Date.now() })}`);
});
Deno.exit(await main(Deno.args));
