// The server half of gf gtcp's "async full duplex" example on Comet: it answers
// "hello", logs heartbeats, and ten seconds after a client connects pushes it
// "doexit".
//
//   deno run --allow-net examples/fullduplex/server.ts [--port 3101] [--speed 1]
import { type CometServer, parseGoimAuth, serve } from "../../mod.ts";
import { portArg, readArgs, runExample } from "../_cli.ts";
import { log, parseSpeed } from "./log.ts";

/** The business op every message of this example travels on. */
export const OP_MESSAGE = 1000;

/** What both sides send: gf's example message, `{ act, data }`. */
export interface Message {
  act: string;
  data?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Starts Comet with the example's operator on `127.0.0.1:port` (TCP only). */
export function startServer(options: { port?: number; speed?: number } = {}): CometServer {
  const speed = options.speed ?? 1;
  // The doexit timers, by connection key, so a client that leaves early cancels its own.
  const exits = new Map<string, ReturnType<typeof setTimeout>>();
  let connections = 0;

  const server = serve({
    tcp: { hostname: "127.0.0.1", port: options.port ?? 3101 },
    ws: false,
    api: false,
    operator: {
      connect({ body, info }) {
        // Choosing the key here, instead of letting Comet generate one, lets the
        // doexit timer address this connection.
        const key = `client-${++connections}`;
        const { hostname, port } = info.remoteAddr;
        log("server", `connect: ${key} from ${hostname}:${port}`);
        exits.set(
          key,
          setTimeout(() => {
            exits.delete(key);
            log("server", `push: doexit to ${key}`);
            const message: Message = { act: "doexit" };
            server.comet.pushKeys([key], OP_MESSAGE, encoder.encode(JSON.stringify(message)));
          }, 10_000 / speed),
        );
        return { ...parseGoimAuth(body), key };
      },
      heartbeat(channel) {
        log("server", `heartbeat from ${channel.key}`);
      },
      receive(channel, frame) {
        const message: Message = JSON.parse(decoder.decode(frame.body));
        log("server", `receive: ${message.act} from ${channel.key}: ${message.data ?? ""}`);
        if (message.act !== "hello") return JSON.stringify({ act: "error", data: "unknown act" });
        const reply: Message = { act: "hello", data: "Nice to meet you!" };
        return JSON.stringify(reply);
      },
      disconnect(channel) {
        clearTimeout(exits.get(channel.key));
        exits.delete(channel.key);
        log("server", `disconnect: ${channel.key}`);
      },
    },
  });
  log("server", `listening on tcp://127.0.0.1:${server.addrs.tcp!.port}`);
  return server;
}

if (import.meta.main) {
  await runExample("server", async () => {
    const { values } = readArgs({
      port: { type: "string", default: "3101" },
      speed: { type: "string" },
    });
    const port = portArg("--port", values.port);
    const server = startServer({ port, speed: parseSpeed(values.speed) });
    Deno.addSignalListener("SIGINT", () => server.shutdown());
    await server.finished;
  });
}
