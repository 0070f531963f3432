// deno-lint-ignore-file no-explicit-any
// Comet behind Deno.serve: the embedded WebSocket handler (createCometHandler
// from mod.ts) on a free loopback port. Used by bench/load.ts for the
// "Deno.serve WebSocket" memory figure only when the handler exists.
// Prints {"event":"listening","port":P}; answers "gc" and "exit" on stdin.
import { serveCommands } from "./_common.ts";

const mod = await import("../mod.ts") as Record<string, any>;
if (typeof mod.createCometHandler !== "function") {
  console.error("createCometHandler is not exported by mod.ts");
  Deno.exit(3);
}
const comet = new mod.Comet({ heartbeatTimeout: 600_000, queueSize: 1024 });
const handler = mod.createCometHandler(comet, {});
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
console.log(JSON.stringify({ event: "listening", port: server.addr.port }));
const gc = (globalThis as { gc?: () => void }).gc;
await serveCommands((cmd) => {
  if (cmd.cmd === "gc") {
    gc?.();
    gc?.();
    return { gc: gc !== undefined, memory: Deno.memoryUsage() };
  }
  if (cmd.cmd === "exit") return {};
  throw new Error(`Unknown command ${cmd.cmd}`);
});
