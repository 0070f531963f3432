// Comet behind Deno.serve: the embedded WebSocket handler (createCometHandler
// from mod.ts) on a free loopback port. Used by bench/load.ts for the
// "Deno.serve WebSocket" memory figure only when the handler exists.
// Prints {"event":"listening","port":P}; answers "gc" and "exit" on stdin.
import { serveCommands } from "./_common.ts";

/** The parts of mod.ts this server uses; imported by name at run time, as they may be absent. */
interface _Mod {
  Comet: new (options: { heartbeatTimeout: number; queueSize: number }) => unknown;
  createCometHandler?: (
    comet: unknown,
    options: Record<string, never>,
  ) => (request: Request) => Response | Promise<Response>;
}

const mod = await import("../mod.ts") as unknown as _Mod;
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
