// A client that joins a room and prints every push it receives: the other half
// of the README's first screen.
//
//   deno run --allow-net examples/listen.ts                      # room live://1000, op 1000
//   deno run --allow-net examples/listen.ts --room live://7 --op 1001 --url ws://host:3102/sub
//
// It speaks goim over WebSocket through the client SDK (`Client` from mod.ts), which
// heartbeats and reconnects by itself; Ctrl-C stops it. On an error it prints one line
// and exits non-zero (2 for bad arguments).
import { Client, ConnectionClosedError, openLink } from "../mod.ts";
import { readArgs, runExample, UsageError } from "./_cli.ts";

await runExample("listen.ts", async () => {
  const { values } = readArgs({
    url: { type: "string", default: "ws://127.0.0.1:3102/sub" },
    room: { type: "string", default: "live://1000" },
    op: { type: "string", default: "1000" },
    mid: { type: "string", default: "1" },
  });
  const op = Number(values.op);
  const mid = Number(values.mid);
  if (!Number.isInteger(op) || op < 1000) {
    throw new UsageError(`--op must be an integer of at least 1000: ${values.op}`);
  }
  if (!Number.isSafeInteger(mid) || mid < 0) {
    throw new UsageError(`--mid must be a whole number: ${values.mid}`);
  }
  const client = new Client(values.url, {
    mid,
    roomId: values.room,
    accepts: [op],
    link: openLink,
  });
  // Before it opens: a push that arrives with the auth reply (one sent the moment the
  // server lists this client as online) would find no handler yet.
  const decoder = new TextDecoder();
  client.on(op, (frame) => console.log(`push op ${op}: ${decoder.decode(frame.body)}`));
  try {
    await client.opened;
  } catch (err) {
    await client.close();
    if (!(err instanceof ConnectionClosedError)) throw err;
    throw new Error(`${err.message}; is the server running? (deno task start)`);
  }
  console.log(`listening in ${values.room} for op ${op} as mid ${mid}`);
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGINT", resolve));
  await client.close();
});
