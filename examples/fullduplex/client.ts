// The client half of gf gtcp's "async full duplex" example on Comet: it
// heartbeats every second, says hello after three seconds, and closes when the
// server pushes "doexit".
//
//   deno run --allow-net examples/fullduplex/client.ts [--url tcp://127.0.0.1:3101] [--speed 1]
import { connect, ConnectionClosedError, Op } from "../../mod.ts";
import { readArgs, runExample } from "../_cli.ts";
import { log, parseSpeed } from "./log.ts";
import { type Message, OP_MESSAGE } from "./server.ts";

/** Runs the client's script against `url`; resolves once the client has closed. */
export async function runClient(url: string, options: { speed?: number } = {}): Promise<void> {
  const speed = options.speed ?? 1;
  const client = await connect(url, {
    accepts: [OP_MESSAGE],
    heartbeat: 1_000 / speed,
    // Like gf's client, end when the server goes away instead of reconnecting.
    reconnect: false,
  });
  log("client", `connected to ${url}`);
  let exiting = false;
  const closed = new Promise<void>((resolve) => {
    client.onState(({ state, reason }) => {
      if (state !== "closed") return;
      log("client", exiting ? "closed" : `closed by the server: ${reason?.message}`);
      resolve();
    });
  });

  client.on(Op.HeartbeatReply, () => log("client", "receive: heartbeat reply"));
  client.onJson<Message>(OP_MESSAGE, (message) => {
    log("client", `receive: ${message.act}`);
    if (message.act !== "doexit") return;
    exiting = true;
    void client.close();
  });
  const hello = setTimeout(async () => {
    log("client", "send: hello");
    try {
      const reply = await client.requestJson<Message>({ act: "hello", data: "My name's John!" });
      log("client", `receive: ${reply.act}: ${reply.data}`);
    } catch (err) {
      log("client", `hello failed: ${(err as Error).message}`);
    }
  }, 3_000 / speed);

  await closed;
  clearTimeout(hello);
}

if (import.meta.main) {
  await runExample("client", async () => {
    const { values } = readArgs({
      url: { type: "string", default: "tcp://127.0.0.1:3101" },
      speed: { type: "string" },
    });
    const speed = parseSpeed(values.speed);
    try {
      await runClient(values.url, { speed });
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
      throw new Error(`${err.message}; is the server running? (examples/fullduplex/server.ts)`);
    }
  });
}
