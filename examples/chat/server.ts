// A browser chat room on Comet: the page speaks goim over WebSocket, says
// things with upstream messages (op 4), and the operator broadcasts them to
// the room. A small HTTP server serves the page.
//
//   deno run --allow-net --allow-read examples/chat/server.ts
//
// Flags: --host 127.0.0.1, --http-port 8000, --ws-port 3102, --api-port 3111.
import { parseArgs } from "node:util";
import { parseGoimAuth, serve } from "../../mod.ts";

/** The business op of chat messages and presence. */
const OP_CHAT = 1000;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    "http-port": { type: "string", default: "8000" },
    "ws-port": { type: "string", default: "3102" },
    "api-port": { type: "string", default: "3111" },
  },
});
const hostname = values.host;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const json = (value: unknown) => encoder.encode(JSON.stringify(value));

const server = serve({
  tcp: false,
  ws: { hostname, port: Number(values["ws-port"]) },
  api: { hostname, port: Number(values["api-port"]) },
  operator: {
    // A demo trusts what the page says; custom_operator.ts shows real auth.
    connect: ({ body }) => parseGoimAuth(body),
    receive(channel, frame) {
      const { act, data } = JSON.parse(decoder.decode(frame.body));
      if (act !== "say") return JSON.stringify({ ok: false, error: `Unknown act: ${act}` });
      if (channel.room === "") return JSON.stringify({ ok: false, error: "Join a room first" });
      const name = String(data?.name ?? "").trim().slice(0, 32) || "guest";
      const text = String(data?.text ?? "").trim().slice(0, 500);
      if (text === "") return JSON.stringify({ ok: false, error: "Say something" });
      server.comet.pushRoom(channel.room, OP_CHAT, json({ act: "say", data: { name, text } }));
      return JSON.stringify({ ok: true });
    },
  },
});

// Pages change rooms with op 12, which the hub handles without asking the
// operator; so presence is published by looking: once a second, every room
// whose head count changed hears the new count.
let counts = new Map<string, number>();
const presence = setInterval(() => {
  for (const [room, count] of server.comet.rooms) {
    if (counts.get(room) === count) continue;
    server.comet.pushRoom(room, OP_CHAT, json({ act: "online", data: { room, count } }));
  }
  counts = new Map(server.comet.rooms);
}, 1_000);

const FILES: Record<string, [file: string, type: string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/goim.js": ["goim.js", "text/javascript; charset=utf-8"],
};
const http = Deno.serve(
  { hostname, port: Number(values["http-port"]), onListen() {} },
  async (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/config.json") return Response.json({ wsPort: server.addrs.ws!.port });
    const found = FILES[path];
    if (found === undefined) return new Response("Not found", { status: 404 });
    // fetch reads file: and https: URLs alike, so the example also runs from a URL.
    const file = await fetch(new URL(found[0], import.meta.url));
    return new Response(file.body, { headers: { "content-type": found[1] } });
  },
);

console.log(
  `Chat on http://${hostname}:${http.addr.port}/ ` +
    `(WebSocket ws://${hostname}:${server.addrs.ws!.port}/sub, ` +
    `push API http://${hostname}:${server.addrs.api!.port})`,
);
Deno.addSignalListener("SIGINT", async () => {
  clearInterval(presence);
  await Promise.all([server.shutdown(), http.shutdown()]);
});
