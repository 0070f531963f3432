// One worker of the Comet command as bench/comet_gc.ts runs it: the
// command's own worker entry, plus a listener on a channel of the harness's
// that runs a full GC in this isolate (only with --v8-flags=--expose-gc)
// and answers with its memory. The entry is imported statically, so it
// hears the supervisor's first message as it would on its own.
import "../src/workers/worker_main.ts";

/** The BroadcastChannel bench/comet_gc.ts asks the workers to collect on. */
export const BENCH_GC_CHANNEL = "comet-bench-gc";

/** One worker isolate's Deno.memoryUsage() after a GC. */
export interface WorkerMemory {
  heapTotal: number;
  heapUsed: number;
  external: number;
}

if ("WorkerGlobalScope" in globalThis) {
  const gc = (globalThis as { gc?: () => void }).gc;
  const bc = new BroadcastChannel(BENCH_GC_CHANNEL);
  bc.onmessage = (e: MessageEvent<unknown>) => {
    // The other workers' answers travel on the same channel.
    if (e.data !== "gc") return;
    gc?.();
    gc?.();
    const { heapTotal, heapUsed, external } = Deno.memoryUsage();
    bc.postMessage({ heapTotal, heapUsed, external } satisfies WorkerMemory);
  };
}
