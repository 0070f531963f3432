// gf gtcp's "async full duplex" example on Comet, both halves in one process:
// the server on a free port, then the client against it.
//
//   deno run --allow-net examples/fullduplex/main.ts [--speed 1]
import { readArgs, runExample } from "../_cli.ts";
import { runClient } from "./client.ts";
import { parseSpeed } from "./log.ts";
import { startServer } from "./server.ts";

await runExample("fullduplex", async () => {
  const { values } = readArgs({ speed: { type: "string" } });
  const speed = parseSpeed(values.speed);
  await using server = startServer({ port: 0, speed });
  await runClient(`tcp://127.0.0.1:${server.addrs.tcp!.port}`, { speed });
});
