import assert from "node:assert/strict";
import { Op } from "../src/protocol/op.ts";
import { TestClient, text } from "./_helpers.ts";
import { LineReader, ROOT, stopChild } from "./_process.ts";

// Serves the repository's files over plain HTTP, as a code host would.
function serveRepo(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("Bad path", { status: 400 });
    try {
      const body = await Deno.readFile(new URL(`.${path}`, ROOT));
      return new Response(body, { headers: { "content-type": "application/typescript" } });
    } catch {
      return new Response("Not found", { status: 404 });
    }
  });
}

const APP = (origin: string) => `
import { serve, Op } from "${origin}/mod.ts";
const server = serve({
  tcp: { hostname: "127.0.0.1", port: 0 },
  // Not the default WebSocket port: a server started by hand (deno task start) may hold it.
  ws: false,
  api: false,
  operator: {
    connect({ body }) {
      const { token } = JSON.parse(new TextDecoder().decode(body));
      if (token !== "let-me-in") throw new Error("Bad token");
      return { mid: 42, key: "url-client", room: "live://url" };
    },
    receive(_channel, frame) {
      return "from url: " + new TextDecoder().decode(frame.body);
    },
  },
});
console.log("port=" + server.addrs.tcp.port + " op=" + Op.Auth);
Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;
`;

Deno.test("mod.ts imported from an http URL starts a server with a custom operator", async () => {
  const http = serveRepo();
  const origin = `http://127.0.0.1:${http.addr.port}`;
  const dir = await Deno.makeTempDir();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-config",
      "--quiet",
      "--reload",
      `--allow-import=127.0.0.1:${http.addr.port}`,
      "--allow-net=127.0.0.1",
      "-",
    ],
    env: { DENO_DIR: dir },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(APP(origin)));
  await writer.close();
  const stdout = new LineReader(child.stdout);
  const stderr = new LineReader(child.stderr);
  try {
    const m = await stdout.line(/^port=(\d+) op=7$/, 60_000).catch((err) => {
      throw new Error(`${err.message}\nstderr:\n${stderr.log}`);
    });
    const port = Number(m[1]);

    await using good = await TestClient.auth(port, { token: "let-me-in" });
    good.sendFrame(Op.SendMsg, "hi");
    const reply = await good.nextOp(Op.SendMsgReply);
    assert.equal(text(reply.body), "from url: hi");

    await using bad = await TestClient.connect(port);
    bad.sendFrame(Op.Auth, JSON.stringify({ token: "guess" }));
    const refusal = await bad.nextOp(Op.DisconnectReply);
    assert.match(text(refusal.body), /Bad token/);
    assert.ok(await bad.closedByServer());

    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0, stderr.log);
  } finally {
    await stopChild(child, stdout, stderr);
    await http.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
