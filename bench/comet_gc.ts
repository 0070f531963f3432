// The real Comet CLI (src/cli.ts `main`, same flags) plus one hook for memory
// sampling: SIGUSR2 runs a full garbage collection (only with
// --v8-flags=--expose-gc) and prints Deno.memoryUsage() as one JSON line on
// stderr, so the harness can split RSS into V8 heap and the rest. Nothing
// else differs from `deno run src/cli.ts`.
import { main } from "../src/cli.ts";
import { heapSpaces } from "./_common.ts";

const gc = (globalThis as { gc?: () => void }).gc;
Deno.addSignalListener("SIGUSR2", () => {
  gc?.();
  gc?.();
  console.error(
    `BENCH_MEMORY ${
      JSON.stringify({ ...Deno.memoryUsage(), spaces: heapSpaces(), at: Date.now() })
    }`,
  );
});
Deno.exit(await main(Deno.args));
