// goim over TLS and over secure WebSocket, with a self-signed certificate made by openssl
// at test time: serve() directly, and the CLI as a child process.
import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { silentLogger } from "../src/log.ts";
import { type CometServer, serve, type ServeOptions } from "../src/serve.ts";
import { type Operator, parseGoimAuth } from "../src/server/operator.ts";
import { cli, LineReader, stopChild, TCP_ONLY } from "./_process.ts";
import { goimMessages, WsClient } from "./_ws_client.ts";
import { makeCertificate } from "./_tls.ts";
import { TestClient } from "./_helpers.ts";

const utf8 = new TextEncoder();
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

const { cert, key } = await makeCertificate();

/** goim's default auth, recording the transport each connection came in on. */
function recording(transports: string[]): Operator {
  return {
    connect(request) {
      transports.push(request.info.transport);
      return parseGoimAuth(request.body);
    },
  };
}

/** serve() with only the TLS listeners and the API, on free loopback ports. */
function startTlsServer(operator: Operator, options: ServeOptions = {}): CometServer {
  return serve({
    tls: { cert, key },
    tcpTls: { hostname: "127.0.0.1", port: 0 },
    wss: { hostname: "127.0.0.1", port: 0 },
    tcp: false,
    ws: false,
    api: { hostname: "127.0.0.1", port: 0 },
    logger: silentLogger,
    operator,
    ...options,
  });
}

function connectTls(port: number): Promise<Deno.TlsConn> {
  return Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [cert] });
}

async function pushRoom(apiPort: number, room: string, op: number, body: string): Promise<void> {
  const [type, id] = room.split("://");
  const res = await fetch(
    `http://127.0.0.1:${apiPort}/goim/push/room?operation=${op}&type=${type}&room=${id}`,
    { method: "POST", body },
  );
  const envelope = await res.json();
  assert.equal(res.status, 200);
  assert.equal(envelope.code, 0, JSON.stringify(envelope));
}

/** Connects a goim client over TLS and authenticates; resolves after op 8. */
async function authTls(
  port: number,
  auth: Record<string, unknown>,
): Promise<TestClient<Deno.TlsConn>> {
  const c = TestClient.over(await connectTls(port));
  try {
    const seq = await c.send(Op.Auth, JSON.stringify(auth));
    const reply = await c.next();
    assert.equal(reply.op, Op.AuthReply);
    assert.equal(reply.seq, seq);
  } catch (err) {
    await c.close();
    throw err;
  }
  return c;
}

/** Reads until the server ends the stream; false if it is still open after `timeout` ms. */
async function droppedByServer(conn: Deno.Conn, timeout = 3000): Promise<boolean> {
  const buf = new Uint8Array(4096);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), timeout);
  });
  const ended = (async () => {
    try {
      while ((await conn.read(buf)) !== null) {
        // TLS alert bytes, or nothing: keep reading to the end.
      }
    } catch {
      // reset by the server
    }
    return "ended" as const;
  })();
  try {
    return (await Promise.race([ended, late])) === "ended";
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // already closed
    }
    await ended;
  }
}

// Sessions over TLS and wss (auth, heartbeats, pushes, batches, closes) run in
// transport_conformance_test.ts; here is what only TLS has.

Deno.test("plaintext clients on the TLS ports are dropped without affecting a TLS client", async () => {
  await using server = startTlsServer(recording([]));
  const port = server.addrs.tcpTls!.port;

  // One sends nothing at all; it is connected first, so a TLS handshake awaited in the
  // accept loop would hold up everyone after it.
  const silent = await Deno.connect({ hostname: "127.0.0.1", port });
  // One speaks goim in the clear.
  const clear = await Deno.connect({ hostname: "127.0.0.1", port });
  await clear.write(encodeFrame(Op.Auth, 1, utf8.encode(`{"mid":1,"key":"clear"}`)));
  // One speaks plain HTTP to the secure WebSocket port.
  const http = await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.wss!.port });
  await http.write(
    utf8.encode(
      "GET /sub HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ),
  );
  try {
    await using c = await authTls(port, { key: "tls-ok", room_id: "live://5" });
    assert.ok(await droppedByServer(clear), "a plaintext goim client is dropped");
    assert.ok(await droppedByServer(http), "a plaintext WebSocket upgrade is dropped");

    await pushRoom(server.addrs.api!.port, "live://5", 1000, "still here");
    const push = await c.nextOp(1000);
    assert.equal(text(push.body), "still here");
    const hbSeq = await c.send(Op.Heartbeat);
    const hb = await c.nextOp(Op.HeartbeatReply);
    assert.equal(hb.seq, hbSeq);
    assert.equal(server.comet.connections, 1);
    assert.equal(server.comet.stats.authOk, 1);
  } finally {
    silent.close();
  }
});

// Fails on Deno 2.9.6: the hub's handshake deadline fires (stats.handshakeTimeouts 1,
// handshaking 0) and closes the TlsConn, but Deno finishes a TLS handshake before it
// shuts a TLS socket down, so a peer that never sends a ClientHello keeps its server
// socket (a file descriptor) for as long as it likes. Ignored until that is dealt with.
Deno.test({
  name: "a silent plaintext client on the TLS port is closed at the handshake deadline",
  ignore: true,
  async fn() {
    await using server = startTlsServer(recording([]), { handshakeTimeout: 300 });
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.tcpTls!.port });
    assert.ok(await droppedByServer(silent, 3000), "a silent plaintext client is dropped");
    assert.equal(server.comet.stats.handshakeTimeouts, 1);
  },
});

// ---------------------------------------------------------------- CLI

Deno.test("cli serves goim over tls and wss and on SIGTERM exits 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "comet_tls_cli_" });
  try {
    await Deno.writeTextFile(`${dir}/cert.pem`, cert);
    await Deno.writeTextFile(`${dir}/key.pem`, key);
    const child = cli([
      "--tcp",
      "127.0.0.1:0",
      "--ws",
      "127.0.0.1:0",
      "--api",
      "127.0.0.1:0",
      "--tls-cert",
      `${dir}/cert.pem`,
      "--tls-key",
      `${dir}/key.pem`,
      "--tcp-tls",
      "127.0.0.1:0",
      "--wss",
      "127.0.0.1:0",
    ]).spawn();
    const stderr = new LineReader(child.stderr);
    const stdout = new LineReader(child.stdout);
    try {
      const line = (await stderr.line(/Comet listening .*/))[0];
      const port = (name: string) => {
        const m = new RegExp(` ${name}=127\\.0\\.0\\.1:(\\d+)`).exec(line);
        assert.ok(m, `${name}= in ${line}`);
        return Number(m[1]);
      };
      const [tlsPort, wssPort, apiPort] = [port("tcpTls"), port("wss"), port("api")];
      port("tcp");
      port("ws");

      await using c = await authTls(tlsPort, {
        mid: 3,
        key: "cli-tls",
        room_id: "live://9",
        accepts: [1000],
      });
      await using ws = await WsClient.connect(await connectTls(wssPort));
      await ws.send(encodeFrame(Op.Auth, 1, utf8.encode(`{"key":"cli-wss","room_id":"live://9"}`)));
      assert.equal(goimMessages((await ws.next())!.payload)[0]!.op, Op.AuthReply);

      await pushRoom(apiPort, "live://9", 1000, "from the cli");
      assert.equal(text((await c.nextOp(1000)).body), "from the cli");
      assert.equal(text(goimMessages((await ws.next())!.payload)[0]!.body), "from the cli");

      child.kill("SIGTERM");
      const bye = await c.nextOp(Op.DisconnectReply, 5_000);
      assert.equal(text(bye.body), "server shutting down");
      assert.ok(await c.closedByServer(5_000));
      const status = await child.status;
      assert.equal(status.code, 0, stderr.log);
    } finally {
      await stopChild(child, stderr, stdout);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli exits 2 with a one-line message when a TLS file is missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "comet_tls_cli_" });
  try {
    await Deno.writeTextFile(`${dir}/key.pem`, key);
    await Deno.writeTextFile(`${dir}/cert.pem`, cert);
    for (
      const [certPath, keyPath, missing] of [
        [`${dir}/missing.pem`, `${dir}/key.pem`, "missing.pem"],
        [`${dir}/cert.pem`, `${dir}/absent.pem`, "absent.pem"],
      ]
    ) {
      const out = await cli([
        ...TCP_ONLY,
        "--tls-cert",
        certPath!,
        "--tls-key",
        keyPath!,
        "--tcp-tls",
        "127.0.0.1:0",
        "--wss",
        "127.0.0.1:0",
      ]).output();
      const stderr = text(out.stderr).trim();
      assert.equal(out.code, 2, stderr);
      assert.equal(stderr.split("\n").length, 1, stderr);
      assert.ok(stderr.startsWith("comet: "), stderr);
      assert.ok(stderr.includes(missing!), stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
