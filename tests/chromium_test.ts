// Drives real headless Chromium (tests/_chromium.ts) against a page served on loopback.
// Ignored when no Chromium is installed; .ci/install_chromium.sh installs Debian's.
import assert from "node:assert/strict";
import { Chromium, findChromium } from "./_chromium.ts";

const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>comet chromium test</title></head>
<body>
<h1 id="status">loading</h1>
<script>
  // Something only real JavaScript would compute: the 20th Fibonacci number.
  let a = 0, b = 1;
  for (let i = 0; i < 20; i++) [a, b] = [b, a + b];
  window.computed = a;
  console.log("computed", a);

  const ws = new WebSocket("ws://" + location.host + "/echo");
  ws.onopen = () => ws.send("ping");
  ws.onmessage = (event) => {
    window.result = event.data;
    document.getElementById("status").textContent = event.data;
    ws.close();
  };
  ws.onerror = () => { window.result = "websocket error"; };
</script>
</body>
</html>
`;

Deno.test({
  name: "chromium runs a page served on loopback and reports its result",
  ignore: findChromium() === undefined,
  async fn() {
    const socketsClosed: Promise<void>[] = [];
    const received: string[] = [];
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      const url = new URL(req.url);
      if (url.pathname === "/echo") {
        if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
          return new Response("expected a WebSocket upgrade", { status: 426 });
        }
        const { socket, response } = Deno.upgradeWebSocket(req);
        socketsClosed.push(
          new Promise((resolve) => socket.addEventListener("close", () => resolve())),
        );
        socket.onmessage = (event) => {
          received.push(String(event.data));
          socket.send(`echo:${event.data}`);
        };
        return response;
      }
      if (url.pathname === "/") {
        return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
      }
      return new Response("not found", { status: 404 });
    });
    const dir = await Deno.makeTempDir({ prefix: "comet_chromium_test_" });
    try {
      {
        await using browser = await Chromium.launch();
        const page = await browser.newPage(`http://127.0.0.1:${server.addr.port}/`);

        await page.waitFor(`window.result === "echo:ping"`, 15_000);
        assert.equal(await page.evaluate<string>("window.result"), "echo:ping");
        assert.equal(await page.evaluate<number>("window.computed"), 6765);
        assert.equal(
          await page.evaluate<string>(`document.getElementById("status").textContent`),
          "echo:ping",
        );
        assert.equal(
          await page.evaluate<number>("new Promise((r) => setTimeout(() => r(42), 10))"),
          42,
        );
        assert.deepEqual(received, ["ping"]);
        assert.ok(page.consoleMessages.includes("computed 6765"), String(page.consoleMessages));
        assert.deepEqual(page.errors, []);

        // Exceptions thrown by the page come back as clear Errors.
        await assert.rejects(
          page.evaluate(`(() => { throw new Error("boom"); })()`),
          /Page threw evaluating .*Error: boom/,
        );

        const png = await page.screenshot(`${dir}/page.png`);
        const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
        assert.deepEqual([...png.subarray(0, 8)], signature);
        const onDisk = await Deno.readFile(`${dir}/page.png`);
        assert.deepEqual([...onDisk.subarray(0, 8)], signature);
        assert.ok(onDisk.length > 100, `PNG is only ${onDisk.length} bytes`);
      }
      await Promise.all(socketsClosed);
    } finally {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
