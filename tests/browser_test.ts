// A goim JavaScript client in real headless Chromium against the standalone server: the page
// follows goim's examples/javascript/client.js (arraybuffer messages, auth on open, a
// heartbeat after the auth reply, op-9 batches walked frame by frame from offset 16).
// Ignored when no Chromium is installed; .ci/install_chromium.sh installs Debian's.
import assert from "node:assert/strict";
import type { Channel } from "../src/server/channel.ts";
import { api, startServer, until } from "./_helpers.ts";
import { Chromium, findChromium } from "./_chromium.ts";

/** The page: goim's example client, recording into window.status/received/heartbeats. */
function page(wsUrl: string): string {
  return `<!doctype html>
<html>
<head><meta charset="utf-8"><title>goim client</title></head>
<body>
<h1>goim client: <span id="status">connecting</span></h1>
<div id="box"></div>
<script>
(function (win) {
  const rawHeaderLen = 16;
  const packetOffset = 0;
  const headerOffset = 4;
  const verOffset = 6;
  const opOffset = 8;
  const seqOffset = 12;
  const textDecoder = new TextDecoder();
  const textEncoder = new TextEncoder();

  win.status = "connecting";
  win.received = [];
  win.heartbeats = [];
  win.batches = 0;
  let heartbeatInterval;

  function appendMsg(text) {
    const span = document.createElement("div");
    span.textContent = text;
    document.getElementById("box").appendChild(span);
  }

  function setStatus(status) {
    win.status = status;
    document.getElementById("status").textContent = status;
  }

  function messageReceived(ver, body) {
    win.received.push(body);
  }

  const ws = new WebSocket(${JSON.stringify(wsUrl)});
  ws.binaryType = "arraybuffer";
  ws.onopen = function () {
    auth();
  };

  ws.onmessage = function (evt) {
    const data = evt.data;
    const dataView = new DataView(data, 0);
    const packetLen = dataView.getInt32(packetOffset);
    const headerLen = dataView.getInt16(headerOffset);
    const ver = dataView.getInt16(verOffset);
    const op = dataView.getInt32(opOffset);
    const seq = dataView.getInt32(seqOffset);

    switch (op) {
      case 8:
        // auth reply ok: start heartbeats
        setStatus("ok");
        appendMsg("receive: auth reply seq=" + seq);
        heartbeat();
        heartbeatInterval = setInterval(heartbeat, 30 * 1000);
        break;
      case 3:
        // heartbeat reply: the body is the room's online count
        win.heartbeats.push(dataView.getInt32(headerLen));
        appendMsg("receive: heartbeat reply");
        break;
      case 9:
        // batch message: frames back to back after the outer header
        win.batches++;
        for (let offset = rawHeaderLen, len = 0; offset < data.byteLength; offset += len) {
          len = dataView.getInt32(offset);
          const innerHeaderLen = dataView.getInt16(offset + headerOffset);
          const innerVer = dataView.getInt16(offset + verOffset);
          const innerOp = dataView.getInt32(offset + opOffset);
          const innerSeq = dataView.getInt32(offset + seqOffset);
          const msgBody = textDecoder.decode(data.slice(offset + innerHeaderLen, offset + len));
          messageReceived(innerVer, msgBody);
          appendMsg("receive: ver=" + innerVer + " op=" + innerOp + " seq=" + innerSeq +
            " message=" + msgBody);
        }
        break;
      default: {
        const msgBody = textDecoder.decode(data.slice(headerLen, packetLen));
        messageReceived(ver, msgBody);
        appendMsg("receive: ver=" + ver + " op=" + op + " seq=" + seq + " message=" + msgBody);
        break;
      }
    }
  };

  ws.onclose = function () {
    if (heartbeatInterval) clearInterval(heartbeatInterval);
    setStatus("failed");
  };

  function heartbeat() {
    const headerBuf = new ArrayBuffer(rawHeaderLen);
    const headerView = new DataView(headerBuf, 0);
    headerView.setInt32(packetOffset, rawHeaderLen);
    headerView.setInt16(headerOffset, rawHeaderLen);
    headerView.setInt16(verOffset, 1);
    headerView.setInt32(opOffset, 2);
    headerView.setInt32(seqOffset, 1);
    ws.send(headerBuf);
    appendMsg("send: heartbeat");
  }

  function auth() {
    const token =
      '{"mid":123, "room_id":"live://1000", "platform":"web", "accepts":[1000,1001,1002]}';
    const headerBuf = new ArrayBuffer(rawHeaderLen);
    const headerView = new DataView(headerBuf, 0);
    const bodyBuf = textEncoder.encode(token);
    headerView.setInt32(packetOffset, rawHeaderLen + bodyBuf.byteLength);
    headerView.setInt16(headerOffset, rawHeaderLen);
    headerView.setInt16(verOffset, 1);
    headerView.setInt32(opOffset, 7);
    headerView.setInt32(seqOffset, 1);
    ws.send(mergeArrayBuffer(headerBuf, bodyBuf));
    appendMsg("send: auth token: " + token);
  }

  function mergeArrayBuffer(ab1, ab2) {
    const u81 = new Uint8Array(ab1);
    const u82 = new Uint8Array(ab2);
    const res = new Uint8Array(ab1.byteLength + ab2.byteLength);
    res.set(u81, 0);
    res.set(u82, ab1.byteLength);
    return res.buffer;
  }
})(window);
</script>
</body>
</html>
`;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

Deno.test({
  name: "goim's javascript client in chromium gets room pushes, batched and alone",
  ignore: findChromium() === undefined,
  async fn() {
    await using server = startServer();
    const wsUrl = `ws://127.0.0.1:${server.addrs.ws!.port}/sub`;
    const html = page(wsUrl);
    const site = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      if (new URL(req.url).pathname !== "/") return new Response("not found", { status: 404 });
      return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
    });
    const dir = await Deno.makeTempDir({ prefix: "comet_browser_test_" });
    try {
      {
        await using browser = await Chromium.launch();
        const tab = await browser.newPage(`http://127.0.0.1:${site.addr.port}/`);
        await tab.waitFor(`window.status === "ok"`, 15_000);

        // The connection is the one the page's auth JSON describes.
        const channels: Channel[] = server.comet.buckets.flatMap((b) => [...b.channels.values()]);
        assert.equal(channels.length, 1);
        const ch = channels[0]!;
        assert.deepEqual(
          [ch.mid, ch.room, ch.platform, ch.info.transport],
          [123, "live://1000", "web", "ws"],
        );
        assert.deepEqual(ch.watched().sort(), [1000, 1001, 1002]);

        // The heartbeat sent on the auth reply is answered with the room's online count.
        await tab.waitFor(`window.heartbeats.length >= 1`);
        assert.equal(await tab.evaluate<number>("window.heartbeats[0]"), 1);

        const push = async (body: string, op = 1000) => {
          const res = await api(server, `/goim/push/room?operation=${op}&type=live&room=1000`, {
            method: "POST",
            body,
          });
          assert.equal(res.body.code, 0, JSON.stringify(res.body));
        };
        const expected: string[] = [];
        // Several pushes through the API in quick succession...
        for (const body of ["api one", "api two", "api three"]) {
          await push(body);
          expected.push(body);
        }
        // ...a burst that is flushed together, so it arrives as one op-9 batch...
        const burst = ["batch 1", "batch 2 ✓", "batch 3 héllo", "batch 4"];
        burst.forEach((body, i) => {
          assert.equal(server.comet.pushRoom("live://1000", 1000 + (i % 3), utf8(body)), 1);
        });
        expected.push(...burst);
        // ...and one on its own.
        await tab.waitFor(`window.received.length === ${expected.length}`);
        await push("alone at last", 1002);
        expected.push("alone at last");

        await tab.waitFor(`window.received.length >= ${expected.length}`);
        assert.deepEqual(await tab.evaluate<string[]>("window.received"), expected);
        assert.ok(await tab.evaluate<number>("window.batches") >= 1, "an op-9 batch arrived");
        assert.deepEqual(tab.errors, []);

        const png = await tab.screenshot(`${dir}/browser.png`);
        assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
        const onDisk = await Deno.readFile(`${dir}/browser.png`);
        assert.deepEqual([...onDisk.subarray(0, 8)], PNG_SIGNATURE);
        assert.ok(onDisk.length > 100, `PNG is only ${onDisk.length} bytes`);
      }
      // The browser is gone, and so is its connection.
      assert.ok(await until(() => server.comet.connections === 0), "page's connection closed");
    } finally {
      await site.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
