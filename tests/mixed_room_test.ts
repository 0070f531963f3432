// One hub, one room, every transport: raw TCP, the standalone WebSocket listener, a
// WebSocket behind createCometHandler in a Deno.serve (the edge path) and gtcp pkg. A room
// push reaches each member exactly once and nobody else.
import assert from "node:assert/strict";
import { createCometHandler } from "../src/handler.ts";
import { silentLogger } from "../src/log.ts";
import { Comet } from "../src/server/comet.ts";
import type { Acceptor } from "../src/transport/acceptor.ts";
import { listenPkg } from "../src/transport/pkg.ts";
import { listenTcp } from "../src/transport/tcp.ts";
import { listenWs } from "../src/transport/websocket.ts";
import { TestClient, text, until, utf8 } from "./_helpers.ts";
import { BrowserClient } from "./_browser_client.ts";

/** A gtcp pkg client: 2-byte big-endian length, then the payload. */
class PkgClient implements AsyncDisposable {
  readonly conn: Deno.TcpConn;
  #bytes = new Uint8Array(0);
  #reading: Promise<void>;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.#reading = this.#read();
  }

  /** Connects and sends the auth JSON as the first package (pkg has no auth reply). */
  static async auth(port: number, auth: Record<string, unknown>): Promise<PkgClient> {
    const c = new PkgClient(await Deno.connect({ hostname: "127.0.0.1", port }));
    const body = utf8.encode(JSON.stringify(auth));
    const pkg = new Uint8Array(2 + body.length);
    pkg[0] = body.length >> 8;
    pkg[1] = body.length & 0xff;
    pkg.set(body, 2);
    let at = 0;
    while (at < pkg.length) at += await c.conn.write(pkg.subarray(at));
    return c;
  }

  async #read(): Promise<void> {
    const buf = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await this.conn.read(buf);
        if (n === null) return;
        const grown = new Uint8Array(this.#bytes.length + n);
        grown.set(this.#bytes);
        grown.set(buf.subarray(0, n), this.#bytes.length);
        this.#bytes = grown;
      }
    } catch {
      // closed
    }
  }

  /** Every whole package received so far; fails on a partial one. */
  packages(): Uint8Array[] {
    const out: Uint8Array[] = [];
    const b = this.#bytes;
    for (let at = 0; at < b.length;) {
      assert.ok(b.length - at >= 2, "whole length prefix");
      const length = (b[at]! << 8) | b[at + 1]!;
      assert.ok(b.length - at - 2 >= length, "whole package");
      out.push(b.slice(at + 2, at + 2 + length));
      at += 2 + length;
    }
    return out;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
    await this.#reading;
  }
}

/** The hub with a listener per transport, and the handler in a Deno.serve. */
class MixedServer implements AsyncDisposable {
  readonly comet = new Comet({ logger: silentLogger });
  readonly tcp: Acceptor = listenTcp(this.comet, { hostname: "127.0.0.1", port: 0 });
  readonly ws: Acceptor = listenWs(this.comet, { hostname: "127.0.0.1", port: 0 });
  readonly pkg: Acceptor = listenPkg(this.comet, { hostname: "127.0.0.1", port: 0 });
  readonly http: Deno.HttpServer<Deno.NetAddr> = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    createCometHandler(this.comet, { api: {}, transport: "edge" }),
  );

  async [Symbol.asyncDispose](): Promise<void> {
    for (const a of [this.tcp, this.ws, this.pkg]) await a[Symbol.asyncDispose]();
    await this.comet.close();
    await this.http.shutdown();
  }
}

Deno.test("a room push reaches members on every transport exactly once, nobody else", async () => {
  await using server = new MixedServer();
  const wsUrl = `ws://127.0.0.1:${server.ws.addr.port}/sub`;
  const edgeUrl = `ws://127.0.0.1:${server.http.addr.port}/sub`;
  const member = (key: string) => ({ key, room_id: "live://mixed", accepts: [1000] });
  const outsider = (key: string) => ({ key, room_id: "live://other", accepts: [1000] });

  await using tcp = await TestClient.auth(server.tcp.addr.port, member("tcp"));
  await using ws = await BrowserClient.auth(wsUrl, member("ws"));
  await using edge = await BrowserClient.auth(edgeUrl, member("edge"));
  await using pkg = await PkgClient.auth(server.pkg.addr.port, member("pkg"));
  await using tcpOut = await TestClient.auth(server.tcp.addr.port, outsider("tcp-out"));
  await using wsOut = await BrowserClient.auth(wsUrl, outsider("ws-out"));
  // Watching op 1000 without being in the room is not membership.
  await using edgeOut = await BrowserClient.auth(edgeUrl, { key: "edge-out", accepts: [1000] });
  await using pkgOut = await PkgClient.auth(server.pkg.addr.port, outsider("pkg-out"));
  assert.ok(await until(() => server.comet.connections === 8), "all authenticated");
  assert.deepEqual(
    ["tcp", "ws", "edge", "pkg"].map((k) => server.comet.channel(k)?.info.transport),
    ["tcp", "ws", "edge", "pkg"],
  );

  const api = `http://127.0.0.1:${server.http.addr.port}`;
  let res = await fetch(`${api}/goim/online/room?type=live&rooms=mixed&rooms=other`);
  assert.deepEqual((await res.json()).data, { mixed: 4, other: 3 });
  res = await fetch(`${api}/goim/push/room?operation=1000&type=live&room=mixed`, {
    method: "POST",
    body: "to the mixed room",
  });
  assert.equal((await res.json()).code, 0);

  const f = await tcp.next();
  assert.deepEqual([f.op, text(f.body)], [1000, "to the mixed room"]);
  for (const c of [ws, edge]) {
    const m = await c.frame();
    assert.deepEqual([m.op, m.seq, text(m.body)], [1000, 0, "to the mixed room"]);
  }
  assert.ok(await until(() => pkg.packages().length === 1), "pkg member got the push");
  assert.equal(text(pkg.packages()[0]!), "to the mixed room");

  // Exactly once: nothing more for the members, nothing at all for the others.
  const silences = await Promise.all([
    tcp.silent(200),
    ws.inbox.silent(200),
    edge.inbox.silent(200),
    tcpOut.silent(200),
    wsOut.inbox.silent(200),
    edgeOut.inbox.silent(200),
  ]);
  assert.deepEqual(silences, [true, true, true, true, true, true]);
  assert.equal(pkg.packages().length, 1);
  assert.equal(pkgOut.packages().length, 0);
  assert.equal(server.comet.stats.deliveries, 4);
});
