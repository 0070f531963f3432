// An operator that authenticates against the application's own users and
// answers upstream commands. Clients send `{"token": "..."}` as their auth
// body; an unknown token is refused (the client gets op 6, the Client library
// throws AuthError).
//
//   deno run --allow-net examples/custom_operator.ts [--port 3101]
import { createHash, timingSafeEqual } from "node:crypto";
import { type Operator, serve } from "../mod.ts";
import { portArg, readArgs, runExample } from "./_cli.ts";

interface User {
  mid: number;
  name: string;
}

/** The application's user table: API token → user. */
const users = new Map<string, User>([
  ["alice-secret", { mid: 1, name: "alice" }],
  ["bob-secret", { mid: 2, name: "bob" }],
]);
const byMid = new Map([...users.values()].map((user) => [user.mid, user]));

const sha256 = (text: string) => createHash("sha256").update(text).digest();
// Digests share one length whatever the tokens', so timingSafeEqual can compare
// them; and checking every entry, without stopping at a match, takes the same
// time for every token.
const digests = [...users].map(([token, user]) => [sha256(token), user] as const);

function findUser(token: string): User | undefined {
  const digest = sha256(token);
  let found: User | undefined;
  for (const [known, user] of digests) {
    if (timingSafeEqual(known, digest)) found = user;
  }
  return found;
}

const decoder = new TextDecoder();

/** The body as a JSON object, or an empty one when it is not. */
function parse(body: Uint8Array): Record<string, unknown> {
  try {
    const value = JSON.parse(decoder.decode(body));
    return typeof value === "object" && value !== null ? value : {};
  } catch {
    return {};
  }
}

const operator: Operator = {
  connect({ body, info }) {
    const { token } = parse(body);
    const user = typeof token === "string" ? findUser(token) : undefined;
    if (user === undefined) {
      console.log(`[auth] refused an unknown token from ${info.remoteAddr.hostname}`);
      // Throwing refuses the connection; the message is the body of op 6.
      throw new Error("unknown token");
    }
    console.log(`[auth] ${user.name} (mid ${user.mid}) from ${info.remoteAddr.hostname}`);
    return { mid: user.mid, room: "live://lobby", accepts: [1000] };
  },
  // What this returns goes back to the client as op 5, with the request's seq.
  receive(channel, frame) {
    const user = byMid.get(channel.mid)!;
    const { cmd, text } = parse(frame.body);
    console.log(`[receive] ${user.name}: ${cmd}`);
    switch (cmd) {
      case "whoami":
        return JSON.stringify({ mid: user.mid, name: user.name, room: channel.room });
      case "echo":
        return JSON.stringify({ text });
      default:
        return JSON.stringify({ error: `unknown command: ${cmd}` });
    }
  },
  disconnect(channel) {
    console.log(`[disconnect] ${byMid.get(channel.mid)!.name}`);
  },
};

await runExample("custom_operator", () => {
  const { values } = readArgs({ port: { type: "string", default: "3101" } });
  const server = serve({
    tcp: { hostname: "127.0.0.1", port: portArg("--port", values.port) },
    ws: false,
    api: false,
    operator,
  });
  console.log(`listening on tcp://127.0.0.1:${server.addrs.tcp!.port}`);
  Deno.addSignalListener("SIGINT", () => server.shutdown());
});
