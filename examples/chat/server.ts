// A browser chat room on Comet: the page speaks goim over WebSocket with the
// SDK's browser client (src/client/mod_browser.ts, bundled at start), says
// things with upstream messages (op 4), and the operator broadcasts them to
// the room. When the server goes away the page reconnects with the client's
// backoff and shows its state. A small HTTP server serves the page.
//
//   deno run --allow-net --allow-read --allow-run examples/chat/server.ts
//
// Flags: --host 127.0.0.1, --http-port 8000, --ws-port 3102, --api-port 3111.
// --allow-run is for `deno bundle`, which makes the page's client.
import { fileURLToPath } from "node:url";
import { parseGoimAuth, serve } from "../../mod.ts";
import { portArg, readArgs, runExample } from "../_cli.ts";

/** The business op of chat messages and presence. */
const OP_CHAT = 1000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const json = (value: unknown) => encoder.encode(JSON.stringify(value));

/** The SDK's browser client as one script: the page imports `Client` from it. */
async function bundleClient(): Promise<string> {
  const entry = new URL("../../src/client/mod_browser.ts", import.meta.url);
  let out;
  try {
    out = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--platform",
        "browser",
        entry.protocol === "file:" ? fileURLToPath(entry) : entry.href,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied)) {
      throw err;
    }
    throw new Error("cannot bundle the page's client: run with --allow-run (for deno bundle)");
  }
  if (!out.success) {
    const why = decoder.decode(out.stderr).trim().split("\n")[0];
    throw new Error(`cannot bundle the page's client: ${why}`);
  }
  return decoder.decode(out.stdout);
}

await runExample("chat", async () => {
  const { values } = readArgs({
    host: { type: "string", default: "127.0.0.1" },
    "http-port": { type: "string", default: "8000" },
    "ws-port": { type: "string", default: "3102" },
    "api-port": { type: "string", default: "3111" },
  });
  const hostname = values.host;
  const ports = {
    http: portArg("--http-port", values["http-port"]),
    ws: portArg("--ws-port", values["ws-port"]),
    api: portArg("--api-port", values["api-port"]),
  };
  const client = await bundleClient();
  const server = serve({
    tcp: false,
    ws: { hostname, port: ports.ws },
    api: { hostname, port: ports.api },
    operator: {
      // A demo trusts what the page says; custom_operator.ts shows real auth.
      connect: ({ body }) => parseGoimAuth(body),
      receive(channel, frame) {
        // A reply, not a throw: a throw leaves the page's request to time out.
        let message;
        try {
          message = JSON.parse(decoder.decode(frame.body));
        } catch {
          return JSON.stringify({ ok: false, error: "Message is not JSON" });
        }
        const { act, data } = message ?? {};
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

  const http = Deno.serve(
    { hostname, port: ports.http, onListen() {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/config.json") return Response.json({ wsPort: server.addrs.ws!.port });
      if (path === "/client.js") {
        return new Response(client, {
          headers: { "content-type": "text/javascript; charset=utf-8" },
        });
      }
      if (path !== "/") return new Response("Not found", { status: 404 });
      // fetch reads file: and https: URLs alike, so the example also runs from a URL.
      const page = await fetch(new URL("index.html", import.meta.url));
      return new Response(page.body, { headers: { "content-type": "text/html; charset=utf-8" } });
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
});
