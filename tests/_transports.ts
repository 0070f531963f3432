// The transports a hub serves, as one table for the conformance test and the mixed-room
// test: how each listens for a Comet, and a client for each behind one surface.
import assert from "node:assert/strict";
import { createCometHandler } from "../src/handler.ts";
import { silentLogger } from "../src/log.ts";
import { encodeFrame, type Frame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { Comet, type CometOptions } from "../src/server/comet.ts";
import type { Acceptor } from "../src/transport/acceptor.ts";
import { listenPkg } from "../src/transport/pkg.ts";
import { listenTcp } from "../src/transport/tcp.ts";
import { listenWs } from "../src/transport/websocket.ts";
import { concat } from "./_bytes.ts";
import { nothingWithin, type StreamClient, TestClient, until, utf8 } from "./_helpers.ts";
import { pkg, PkgClient } from "./_pkg_client.ts";
import { makeCertificate } from "./_tls.ts";
import { encodeClientFrame, goimFrame, goimMessages, Opcode, WsClient } from "./_ws_client.ts";

/** The op a pkg package reads as: pkg carries no ops, only payloads. */
export const NO_OP = -1;

/** One client of any transport, as the conformance scenarios drive it. */
export interface TransportClient extends AsyncDisposable {
  /** Sends one goim frame (pkg: its package, if it has one); resolves with its seq. */
  send(op: number, body?: Uint8Array | string, seq?: number): Promise<number>;
  /** The bytes one frame takes on this transport's wire, for several in one write. */
  encode(op: number, body?: Uint8Array | string, seq?: number): Uint8Array;
  /** Writes raw wire bytes, ignoring a connection the server has closed. */
  write(bytes: Uint8Array): Promise<void>;
  /** The next goim frame, op-9 batches unpacked (pkg: a package as op {@linkcode NO_OP}). */
  next(timeout?: number): Promise<Frame>;
  /** True if nothing arrives within `ms`. */
  silent(ms?: number): Promise<boolean>;
  /** Resolves true once the server has closed the connection; false on timeout. */
  closedByServer(timeout?: number): Promise<boolean>;
  /** The WebSocket close code the server sent, once read; undefined on stream transports. */
  readonly closeCode: number | undefined;
  /** How many op-9 batch messages have arrived (WebSocket transports only batch). */
  readonly batches: number;
  /** Leaves as the protocol says: a close frame with 1000 on WebSocket, else the socket shut. */
  leave(): Promise<void>;
  close(): Promise<void>;
}

/** A transport listening for one hub. */
export interface Served {
  readonly port: number;
  /** Opens a client; WebSocket transports send `headers` with the upgrade. */
  connect(headers?: Record<string, string>): Promise<TransportClient>;
  close(): Promise<void>;
}

/** One row of the transport table. */
export interface TransportCase {
  /** The row's name in test names. */
  readonly name: string;
  /** The transport name the hub and its operator see. */
  readonly transport: string;
  /** Whether frames carry goim ops and seqs both ways (not pkg: bare payloads). */
  readonly ops: boolean;
  /** Whether it is WebSocket: close codes, upgrade headers, text messages, op-9 batches. */
  readonly websocket: boolean;
  /** Wire bytes this transport's framing refuses as malformed, one connection each. */
  readonly malformed: readonly Uint8Array[];
  /** Listens on a free loopback port for `comet`. */
  serve(comet: Comet): Promise<Served>;
}

let _cert: Promise<{ cert: string; key: string }> | undefined;

/** One self-signed certificate for every TLS row, made when the first asks. */
function _certificate(): Promise<{ cert: string; key: string }> {
  return _cert ??= makeCertificate();
}

const _loopback = { hostname: "127.0.0.1", port: 0 } as const;

function _bytes(body: Uint8Array | string): Uint8Array {
  return typeof body === "string" ? utf8.encode(body) : body;
}

function _acceptor(acceptor: Acceptor, connect: Served["connect"]): Served {
  return {
    port: acceptor.addr.port,
    connect,
    close: () => acceptor[Symbol.asyncDispose](),
  };
}

/** A goim frame whose header length is 20, where the protocol has 16. */
function _badHeaderFrame(): Uint8Array {
  const bad = encodeFrame(Op.Heartbeat, 1);
  new DataView(bad.buffer).setInt16(4, 20);
  return bad;
}

/** Binary WebSocket messages that are not exactly one goim frame. */
function _badWsMessages(): Uint8Array[] {
  const two = concat([encodeFrame(Op.Heartbeat, 1), encodeFrame(Op.Heartbeat, 2)]);
  return [two, new Uint8Array(3)].map((m) => encodeClientFrame(Opcode.Binary, m));
}

/** What the clients over a stream share: a {@linkcode StreamClient} does the reading. */
abstract class _StreamTransportClient<T> implements TransportClient {
  protected readonly c: StreamClient<T, Deno.Conn>;
  readonly closeCode = undefined;
  readonly batches = 0;

  constructor(c: StreamClient<T, Deno.Conn>) {
    this.c = c;
  }

  abstract send(op: number, body?: Uint8Array | string, seq?: number): Promise<number>;
  abstract encode(op: number, body?: Uint8Array | string, seq?: number): Uint8Array;
  abstract next(timeout?: number): Promise<Frame>;

  write(bytes: Uint8Array): Promise<void> {
    return this.c.write(bytes);
  }

  silent(ms?: number): Promise<boolean> {
    return this.c.silent(ms);
  }

  closedByServer(timeout?: number): Promise<boolean> {
    return this.c.closedByServer(timeout);
  }

  leave(): Promise<void> {
    return this.c.close();
  }

  close(): Promise<void> {
    return this.c.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** goim's binary frames over a stream: TCP or TLS. */
class _GoimStreamClient extends _StreamTransportClient<Frame> {
  readonly #goim: TestClient<Deno.Conn>;

  constructor(c: TestClient<Deno.Conn>) {
    super(c);
    this.#goim = c;
  }

  send(op: number, body: Uint8Array | string = "", seq?: number): Promise<number> {
    return this.#goim.send(op, body, seq);
  }

  encode(op: number, body: Uint8Array | string = "", seq = ++this.#goim.seq): Uint8Array {
    return encodeFrame(op, seq, _bytes(body));
  }

  next(timeout?: number): Promise<Frame> {
    return this.#goim.next(timeout);
  }
}

/** goim over WebSocket with a raw client (masking, close frames and all), plain or TLS. */
class _GoimWsClient implements TransportClient {
  readonly #ws: WsClient;
  readonly #frames: Frame[] = [];
  #ended = false;
  #closeSent = false;
  #seq = 0;
  closeCode: number | undefined;
  batches = 0;

  constructor(ws: WsClient) {
    this.#ws = ws;
  }

  async send(op: number, body: Uint8Array | string = "", seq = ++this.#seq): Promise<number> {
    await this.#ws.send(encodeFrame(op, seq, _bytes(body)));
    return seq;
  }

  encode(op: number, body: Uint8Array | string = "", seq = ++this.#seq): Uint8Array {
    return encodeClientFrame(Opcode.Binary, encodeFrame(op, seq, _bytes(body)));
  }

  async write(bytes: Uint8Array): Promise<void> {
    try {
      await this.#ws.writeRaw(bytes);
    } catch {
      // The server may have closed us.
    }
  }

  /** Reads one message into the queue, or marks the end; false on timeout. */
  async #pull(deadline: number): Promise<boolean> {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    let m;
    try {
      m = await this.#ws.next(left);
    } catch (err) {
      if ((err as Error).message.startsWith("Timed out")) return false;
      throw err;
    }
    if (m === null) this.#ended = true;
    else if (m.opcode === Opcode.Close) {
      this.closeCode = new DataView(m.payload.buffer, m.payload.byteOffset).getUint16(0);
      // Answer as a browser does: a server may hold the socket open until the client has.
      if (!this.#closeSent) await this.#sendClose(this.closeCode);
    } else {
      assert.equal(m.opcode, Opcode.Binary, `expected a binary message, got opcode ${m.opcode}`);
      if (goimFrame(m.payload).op === Op.Raw) this.batches++;
      this.#frames.push(...goimMessages(m.payload));
    }
    return true;
  }

  async next(timeout = 3000): Promise<Frame> {
    const deadline = Date.now() + timeout;
    while (this.#frames.length === 0) {
      if (this.#ended) throw new Error("Connection closed");
      if (!await this.#pull(deadline)) throw new Error("Timed out waiting for a frame");
    }
    return this.#frames.shift()!;
  }

  silent(ms = 200): Promise<boolean> {
    return nothingWithin((timeout) => this.next(timeout), ms);
  }

  async closedByServer(timeout = 3000): Promise<boolean> {
    const deadline = Date.now() + timeout;
    while (!this.#ended) if (!await this.#pull(deadline)) return false;
    return true;
  }

  #sendClose(code: number): Promise<void> {
    this.#closeSent = true;
    return this.write(encodeClientFrame(Opcode.Close, new Uint8Array([code >> 8, code & 0xff])));
  }

  leave(): Promise<void> {
    return this.#sendClose(1000);
  }

  close(): Promise<void> {
    return this.#ws.close(1000);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** gf gtcp pkg with a 2-byte header: a package is a payload, with no op and no seq. */
class _PkgTransportClient extends _StreamTransportClient<Uint8Array> {
  readonly #headerSize: number;

  constructor(c: PkgClient) {
    super(c);
    this.#headerSize = c.headerSize;
  }

  /** Maps what pkg can say: auth (the first package), heartbeat (empty) and messages. */
  encode(op: number, body: Uint8Array | string = ""): Uint8Array {
    if (op === Op.Heartbeat) return pkg(this.#headerSize, "");
    if (op === Op.Auth || op === Op.SendMsg) return pkg(this.#headerSize, body);
    throw new TypeError(`Pkg carries no op: ${op}`);
  }

  async send(op: number, body: Uint8Array | string = ""): Promise<number> {
    await this.c.write(this.encode(op, body));
    return 0;
  }

  async next(timeout?: number): Promise<Frame> {
    return { ver: 1, op: NO_OP, seq: 0, body: await this.c.next(timeout) };
  }
}

async function _ws(conn: Deno.Conn, headers?: Record<string, string>): Promise<TransportClient> {
  return new _GoimWsClient(await WsClient.connect(conn, "/sub", headers));
}

/** A goim WebSocket client of the server listening on loopback `port`, not yet authenticated. */
export async function connectWs(port: number): Promise<TransportClient> {
  return await _ws(await Deno.connect({ hostname: "127.0.0.1", port }));
}

async function _tls(port: number): Promise<Deno.TlsConn> {
  const { cert } = await _certificate();
  return Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [cert] });
}

const _tcpConn = (port: number) => Deno.connect({ hostname: "127.0.0.1", port });

/**
 * Every transport: goim over TCP, TLS, the WebSocket listener (plain and TLS), the
 * `createCometHandler` in a `Deno.serve` (transport `edge`, as the edge entry names it)
 * and gtcp pkg with a 2-byte header.
 */
export const TRANSPORTS: readonly TransportCase[] = [
  {
    name: "tcp",
    transport: "tcp",
    ops: true,
    websocket: false,
    malformed: [_badHeaderFrame()],
    serve(comet) {
      const a = listenTcp(comet, _loopback);
      const connect = async () =>
        new _GoimStreamClient(TestClient.over(await _tcpConn(a.addr.port)));
      return Promise.resolve(_acceptor(a, connect));
    },
  },
  {
    name: "tls",
    transport: "tls",
    ops: true,
    websocket: false,
    malformed: [_badHeaderFrame()],
    async serve(comet) {
      const a = listenTcp(comet, { ..._loopback, tls: await _certificate() });
      return _acceptor(
        a,
        async () => new _GoimStreamClient(TestClient.over(await _tls(a.addr.port))),
      );
    },
  },
  {
    name: "ws",
    transport: "ws",
    ops: true,
    websocket: true,
    malformed: _badWsMessages(),
    serve(comet) {
      const a = listenWs(comet, _loopback);
      return Promise.resolve(_acceptor(a, async (h) => _ws(await _tcpConn(a.addr.port), h)));
    },
  },
  {
    name: "wss",
    transport: "wss",
    ops: true,
    websocket: true,
    malformed: _badWsMessages(),
    async serve(comet) {
      const a = listenWs(comet, { ..._loopback, tls: await _certificate() });
      return _acceptor(a, async (h) => _ws(await _tls(a.addr.port), h));
    },
  },
  {
    name: "handler",
    transport: "edge",
    ops: true,
    websocket: true,
    malformed: _badWsMessages(),
    serve(comet) {
      const http = Deno.serve(
        { ..._loopback, onListen() {} },
        createCometHandler(comet, { api: {}, transport: "edge" }),
      );
      return Promise.resolve({
        port: http.addr.port,
        connect: async (h) => _ws(await _tcpConn(http.addr.port), h),
        close: () => http.shutdown(),
      });
    },
  },
  {
    name: "pkg",
    transport: "pkg",
    ops: false,
    websocket: false,
    // A length is all pkg framing has; the body-limit scenario covers one too large.
    malformed: [],
    serve(comet) {
      const a = listenPkg(comet, { ..._loopback, headerSize: 2 });
      return Promise.resolve(
        _acceptor(
          a,
          async () => new _PkgTransportClient(new PkgClient(await _tcpConn(a.addr.port), 2)),
        ),
      );
    },
  },
];

/**
 * A hub with some transports listening, and the clients opened through it; disposing
 * closes the clients, the hub and the listeners, in that order.
 */
export class Hub implements AsyncDisposable {
  readonly comet: Comet;
  readonly #served = new Map<string, Served>();
  readonly #clients: TransportClient[] = [];
  readonly #first: TransportCase;

  private constructor(comet: Comet, first: TransportCase) {
    this.comet = comet;
    this.#first = first;
  }

  /** A hub with `options` (and a silent logger), served by each of `cases`. */
  static async start(options: CometOptions, ...cases: TransportCase[]): Promise<Hub> {
    assert.ok(cases.length > 0, "at least one transport");
    const hub = new Hub(new Comet({ logger: silentLogger, ...options }), cases[0]!);
    try {
      for (const t of cases) hub.#served.set(t.name, await t.serve(hub.comet));
    } catch (err) {
      await hub[Symbol.asyncDispose]();
      throw err;
    }
    return hub;
  }

  /** Where `t` (default the first transport) listens. */
  served(t: TransportCase = this.#first): Served {
    const s = this.#served.get(t.name);
    assert.ok(s, `${t.name} is not served`);
    return s;
  }

  /** Opens a client of `t` that has not authenticated. */
  async connect(
    t: TransportCase = this.#first,
    headers?: Record<string, string>,
  ): Promise<TransportClient> {
    const c = await this.served(t).connect(headers);
    this.#clients.push(c);
    return c;
  }

  /**
   * Opens a client of `t` and authenticates with goim's auth JSON: resolves once the auth
   * reply with the same seq is read, or on pkg (no reply) once the hub has the key.
   */
  async auth(
    auth: Record<string, unknown>,
    t: TransportCase = this.#first,
    headers?: Record<string, string>,
  ): Promise<TransportClient> {
    const c = await this.connect(t, headers);
    const seq = await c.send(Op.Auth, JSON.stringify(auth));
    if (t.ops) {
      const reply = await c.next();
      assert.deepEqual([reply.op, reply.seq], [Op.AuthReply, seq], "auth reply");
    } else {
      const key = String(auth.key);
      assert.ok(await until(() => this.comet.channel(key) !== undefined), `auth of ${key}`);
    }
    return c;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const c of this.#clients) await c.close();
    await this.comet.close();
    for (const s of this.#served.values()) await s.close();
  }
}
