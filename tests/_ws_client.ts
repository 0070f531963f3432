// A small raw WebSocket client (RFC 6455) for tests, over any Deno.Conn: plain TCP or TLS.
// It is written independently of the server's codec so that it checks the server rather
// than agreeing with it. Nothing is read in the background: bytes are read from the socket
// only while `next()` is waiting, so a client that stops calling `next()` stops reading and
// the server's writes back up.
//
//   const ws = await WsClient.connect(await Deno.connect({ port }), "/sub");
//   await ws.send(bytes);            // one masked binary message
//   const m = await ws.next();       // { opcode, payload } or null at end of stream
//   await ws.close(1000);            // close frame, then the socket

/** Opcodes of RFC 6455. */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** One message (fragments joined) or control frame from the server. */
export interface WsMessage {
  opcode: number;
  payload: Uint8Array;
}

/** The server's answer to the opening handshake. */
export interface WsResponse {
  status: number;
  headers: Headers;
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MAX_HEAD = 16 * 1024;

/** The Sec-WebSocket-Accept a server must answer `key` with. */
export async function expectedAccept(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/** Encodes one masked client frame. */
export function encodeClientFrame(
  opcode: number,
  payload: Uint8Array,
  fin = true,
  mask: Uint8Array = crypto.getRandomValues(new Uint8Array(4)),
): Uint8Array {
  const n = payload.length;
  const extra = n < 126 ? 0 : n < 0x10000 ? 2 : 8;
  const out = new Uint8Array(2 + extra + 4 + n);
  const view = new DataView(out.buffer);
  out[0] = (fin ? 0x80 : 0) | opcode;
  if (extra === 0) out[1] = 0x80 | n;
  else if (extra === 2) {
    out[1] = 0x80 | 126;
    view.setUint16(2, n);
  } else {
    out[1] = 0x80 | 127;
    view.setBigUint64(2, BigInt(n));
  }
  const at = 2 + extra;
  out.set(mask, at);
  for (let i = 0; i < n; i++) out[at + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

/** A raw WebSocket client over a connection it owns. */
export class WsClient implements AsyncDisposable {
  readonly conn: Deno.Conn;
  /** The 101 response of the handshake. */
  response: WsResponse = { status: 0, headers: new Headers() };
  /** Bytes read from the socket so far, frames and handshake alike. */
  bytesRead = 0;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  #readBuf = new Uint8Array(64 * 1024);
  #pending: Promise<number | null> | undefined;
  #eof = false;
  #fragments: Uint8Array[] = [];
  #fragmentOpcode = -1;
  #closed = false;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /**
   * Performs the opening handshake on `conn` (which the client then owns) for `path`,
   * checking the 101 status and Sec-WebSocket-Accept. On failure the connection is closed.
   */
  static async connect(
    conn: Deno.Conn,
    path = "/sub",
    headers: Record<string, string> = {},
  ): Promise<WsClient> {
    const client = new WsClient(conn);
    try {
      await client.#handshake(path, headers);
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  async #handshake(path: string, extra: Record<string, string>): Promise<void> {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const addr = this.conn.remoteAddr as Deno.NetAddr;
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: ${addr.hostname}:${addr.port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
    ];
    await this.#write(encoder.encode(lines.join("\r\n") + "\r\n\r\n"));
    let headEnd = -1;
    while ((headEnd = this.#find("\r\n\r\n")) < 0) {
      if (this.#end - this.#start > MAX_HEAD) throw new Error("Handshake response is too long");
      if (!(await this.#fill())) throw new Error("Connection closed during the handshake");
    }
    const head = decoder.decode(this.#buf.subarray(this.#start, headEnd));
    this.#start = headEnd + 4;
    const [statusLine, ...headerLines] = head.split("\r\n");
    const m = /^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "");
    if (!m) throw new Error(`Malformed status line: ${statusLine}`);
    const headers = new Headers();
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      if (colon <= 0) throw new Error(`Malformed header line: ${line}`);
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    this.response = { status: Number(m[1]), headers };
    if (this.response.status !== 101) throw new Error(`Upgrade refused: ${statusLine}`);
    if (headers.get("upgrade")?.toLowerCase() !== "websocket") {
      throw new Error(`Upgrade header is ${headers.get("upgrade")}`);
    }
    if (!/\bupgrade\b/i.test(headers.get("connection") ?? "")) {
      throw new Error(`Connection header is ${headers.get("connection")}`);
    }
    const accept = headers.get("sec-websocket-accept");
    const expected = await expectedAccept(key);
    if (accept !== expected) {
      throw new Error(`Sec-WebSocket-Accept is ${accept}, expected ${expected}`);
    }
  }

  /** Where `marker` starts in the unread bytes, or -1. */
  #find(marker: string): number {
    const bytes = encoder.encode(marker);
    outer: for (let i = this.#start; i + bytes.length <= this.#end; i++) {
      for (let j = 0; j < bytes.length; j++) if (this.#buf[i + j] !== bytes[j]) continue outer;
      return i;
    }
    return -1;
  }

  /** Reads once from the socket into the buffer; false at end of stream. */
  async #fill(timeout?: number): Promise<boolean> {
    if (this.#eof) return false;
    this.#pending ??= this.conn.read(this.#readBuf).catch(() => null);
    let n: number | null | "timeout";
    if (timeout === undefined) n = await this.#pending;
    else {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeout);
      });
      try {
        n = await Promise.race([this.#pending, late]);
      } finally {
        clearTimeout(timer);
      }
      if (n === "timeout") throw new Error("Timed out waiting for a WebSocket frame");
    }
    this.#pending = undefined;
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.bytesRead += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end + n > this.#buf.length) {
      // Move the unread bytes to the front, into a larger buffer when they need it.
      const live = this.#end - this.#start;
      if (live + n > this.#buf.length) {
        const grown = new Uint8Array((live + n) * 2);
        grown.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = grown;
      } else {
        this.#buf.copyWithin(0, this.#start, this.#end);
      }
      this.#start = 0;
      this.#end = live;
    }
    this.#buf.set(this.#readBuf.subarray(0, n), this.#end);
    this.#end += n;
    return true;
  }

  /** The next whole frame in the buffer, or undefined when more bytes are needed. */
  #frame(): { fin: boolean; opcode: number; payload: Uint8Array } | undefined {
    const avail = this.#end - this.#start;
    if (avail < 2) return undefined;
    const b = this.#buf;
    const s = this.#start;
    const b0 = b[s]!;
    const b1 = b[s + 1]!;
    if (b0 & 0x70) throw new Error(`Reserved bits set: ${b0.toString(16)}`);
    if (b1 & 0x80) throw new Error("Server frame is masked");
    let len = b1 & 0x7f;
    let at = 2;
    if (len === 126) {
      if (avail < 4) return undefined;
      len = (b[s + 2]! << 8) | b[s + 3]!;
      at = 4;
    } else if (len === 127) {
      if (avail < 10) return undefined;
      const big = new DataView(b.buffer, s + 2, 8).getBigUint64(0);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("Frame is too long");
      len = Number(big);
      at = 10;
    }
    if (avail < at + len) return undefined;
    const payload = b.slice(s + at, s + at + len);
    this.#start = s + at + len;
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload };
  }

  /**
   * The next message (fragments joined) or control frame; `null` at end of stream. Reads
   * from the socket only while waiting here.
   *
   * @throws When nothing arrives within `timeout` ms, or the server breaks the protocol.
   */
  async next(timeout = 3000): Promise<WsMessage | null> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const f = this.#frame();
      if (f === undefined) {
        if (!(await this.#fill(Math.max(1, deadline - Date.now())))) return null;
        continue;
      }
      if (f.opcode >= 0x8) {
        if (!f.fin) throw new Error("Control frame is fragmented");
        return { opcode: f.opcode, payload: f.payload };
      }
      if (f.opcode === Opcode.Continuation) {
        if (this.#fragmentOpcode < 0) throw new Error("Continuation without a first fragment");
      } else {
        if (this.#fragmentOpcode >= 0) throw new Error("New message inside a fragmented one");
        this.#fragmentOpcode = f.opcode;
      }
      this.#fragments.push(f.payload);
      if (!f.fin) continue;
      const parts = this.#fragments;
      const opcode = this.#fragmentOpcode;
      this.#fragments = [];
      this.#fragmentOpcode = -1;
      if (parts.length === 1) return { opcode, payload: parts[0]! };
      const payload = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        payload.set(p, at);
        at += p.length;
      }
      return { opcode, payload };
    }
  }

  /** Sends `payload` as one masked message (binary unless `opcode` says otherwise). */
  send(payload: Uint8Array, opcode: number = Opcode.Binary): Promise<void> {
    return this.#write(encodeClientFrame(opcode, payload));
  }

  /** Writes raw bytes to the socket (for frames made with `encodeClientFrame`). */
  writeRaw(bytes: Uint8Array): Promise<void> {
    return this.#write(bytes);
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) at += await this.conn.write(bytes.subarray(at));
  }

  /**
   * Sends a close frame with `code` (when the socket still takes it) and closes the
   * socket, without waiting for the server's answer. Idempotent.
   */
  async close(code?: number, reason = ""): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (code !== undefined && !this.#eof) {
      const r = encoder.encode(reason);
      const body = new Uint8Array(2 + r.length);
      new DataView(body.buffer).setUint16(0, code);
      body.set(r, 2);
      try {
        await this.#write(encodeClientFrame(Opcode.Close, body));
      } catch {
        // The server is gone already.
      }
    }
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.#pending;
    this.#pending = undefined;
  }

  /** Closes with 1000. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close(1000);
  }
}

/** A goim frame as read from a WebSocket message. */
export interface GoimFrame {
  ver: number;
  op: number;
  seq: number;
  body: Uint8Array;
}

/** Reads the one goim frame `bytes` must be exactly. */
export function goimFrame(bytes: Uint8Array): GoimFrame {
  if (bytes.length < 16) throw new Error(`A goim frame of ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const packLen = view.getInt32(0);
  const headerLen = view.getInt16(4);
  if (packLen !== bytes.length || headerLen !== 16) {
    throw new Error(
      `Not one goim frame: packLen ${packLen} headerLen ${headerLen} in ${bytes.length}`,
    );
  }
  return {
    ver: view.getInt16(6),
    op: view.getInt32(8),
    seq: view.getInt32(12),
    body: bytes.slice(16),
  };
}

/**
 * The goim frames one WebSocket message carries: the frame itself, or for an op-9 (Raw)
 * batch the frames back to back in its body, walked as goim's JavaScript client does.
 */
export function goimMessages(payload: Uint8Array): GoimFrame[] {
  const outer = goimFrame(payload);
  if (outer.op !== 9) return [outer];
  const out: GoimFrame[] = [];
  const body = outer.body;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let at = 0; at < body.length;) {
    if (body.length - at < 16) throw new Error(`Truncated inner frame at ${at}`);
    const packLen = view.getInt32(at);
    if (packLen < 16 || at + packLen > body.length) {
      throw new Error(`Inner frame at ${at} has packLen ${packLen} in ${body.length}`);
    }
    out.push(goimFrame(body.subarray(at, at + packLen)));
    at += packLen;
  }
  return out;
}
