import { FrameDecoder } from "../protocol/decoder.ts";
import { ProtocolError } from "../protocol/protocol_error.ts";
import { ConnectionClosedError } from "./connection_closed_error.ts";
import type { Link, LinkOptions } from "./link.ts";

/** Bytes read at a time; a client has one connection, so a roomy buffer is cheap. */
const _READ_SIZE = 64 * 1024;
/** Default cap on one inbound frame body: far above any push, far below a memory problem. */
const _MAX_BODY = 16 * 1024 * 1024;

function _message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Opens a goim connection over TCP (`tcp://host:port`) or TLS
 * (`tls://host:port`, trusting `options.caCerts` besides the system roots).
 * Deno only: browsers have no raw sockets, so this module is kept apart from
 * the WebSocket path and reached only through {@linkcode openLink} or an
 * explicit `link` option.
 *
 * Frames sent are queued and written by one writer task, several at a time
 * when they pile up, so a frame's bytes are never interleaved with another's.
 *
 * @throws {TypeError} When the URL is not `tcp:` or `tls:` or has no port.
 * @throws {ConnectionClosedError} When the connection or TLS handshake fails.
 *
 * @example
 * ```ts ignore
 * import { Client, openTcpLink } from "../../mod.ts";
 *
 * const client = new Client("tcp://127.0.0.1:3101", { mid: 1, link: openTcpLink });
 * await client.opened;
 * ```
 */
export async function openTcpLink(url: URL, options: LinkOptions): Promise<Link> {
  if (url.protocol !== "tcp:" && url.protocol !== "tls:") {
    throw new TypeError(`TCP link needs a tcp:// or tls:// URL: ${url.href}`);
  }
  const port = Number(url.port);
  if (url.port === "" || !Number.isInteger(port)) {
    throw new TypeError(`URL has no port: ${url.href}`);
  }
  // URL keeps the brackets of an IPv6 literal; sockets want the bare address.
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const signal = options.signal;
  signal?.throwIfAborted();
  let conn: Deno.TcpConn | Deno.TlsConn;
  try {
    if (url.protocol === "tcp:") {
      conn = await Deno.connect({ hostname, port, ...(signal && { signal }) });
    } else {
      conn = await Deno.connectTls({
        hostname,
        port,
        ...(options.caCerts && { caCerts: options.caCerts }),
      });
    }
  } catch (err) {
    signal?.throwIfAborted();
    throw new ConnectionClosedError(`Connecting to ${url.href} failed: ${_message(err)}`, {
      cause: err,
    });
  }
  const link = new _TcpLink(conn, url.href, options);
  try {
    // Surface a certificate problem here, as a failed connect, not as a read error later.
    if ("handshake" in conn) await conn.handshake();
    signal?.throwIfAborted();
  } catch (err) {
    const reason = signal?.aborted ? signal.reason : new ConnectionClosedError(
      `TLS handshake with ${url.href} failed: ${_message(err)}`,
      { cause: err },
    );
    link.close(reason);
    await link.closed;
    throw reason;
  }
  return link;
}

class _TcpLink implements Link {
  readonly closed: Promise<Error>;
  #conn: Deno.Conn;
  #href: string;
  #onFrame: LinkOptions["onFrame"];
  #decoder: FrameDecoder;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #writer: Promise<void> | undefined;
  #reader: Promise<void>;
  #reason: Error | undefined;
  #done!: (reason: Error) => void;

  constructor(conn: Deno.Conn, href: string, options: LinkOptions) {
    this.#conn = conn;
    this.#href = href;
    this.#onFrame = options.onFrame;
    this.#decoder = new FrameDecoder({ maxBody: options.maxBody ?? _MAX_BODY });
    this.closed = new Promise((resolve) => (this.#done = resolve));
    this.#reader = this.#read();
  }

  get bufferedAmount(): number {
    return this.#queuedBytes;
  }

  send(frame: Uint8Array): void {
    if (this.#reason) {
      throw new ConnectionClosedError(`Connection is closed: ${this.#reason.message}`);
    }
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
    this.#writer ??= this.#write();
  }

  close(reason?: Error): void {
    if (this.#reason) return;
    this.#reason = reason ?? new ConnectionClosedError(`Connection closed: ${this.#href}`);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
    const reasonNow = this.#reason;
    // The reader and a write in progress fail promptly once the socket is closed.
    Promise.all([this.#reader, this.#writer]).then(() => this.#done(reasonNow));
  }

  async #read(): Promise<void> {
    const buf = new Uint8Array(_READ_SIZE);
    let reason: Error | undefined;
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) {
          reason = new ConnectionClosedError(`Server closed the connection: ${this.#href}`);
          break;
        }
        this.#decoder.push(buf.subarray(0, n));
        for (let frame = this.#decoder.next(); frame; frame = this.#decoder.next()) {
          // Closed by us: whatever is still buffered is no longer wanted.
          if (this.#reason) return;
          this.#onFrame(frame);
        }
      }
    } catch (err) {
      if (this.#reason) return;
      reason = err instanceof ProtocolError ? err : new ConnectionClosedError(
        `Connection failed: ${_message(err)}`,
        { cause: err },
      );
    }
    this.close(reason);
  }

  /** Drains the queue, writing everything queued so far with one call each round. */
  async #write(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#reason) {
        const queue = this.#queue;
        let data: Uint8Array;
        if (queue.length === 1) {
          data = queue[0]!;
        } else {
          data = new Uint8Array(this.#queuedBytes);
          let at = 0;
          for (const frame of queue) {
            data.set(frame, at);
            at += frame.length;
          }
        }
        queue.length = 0;
        for (let at = 0; at < data.length;) {
          at += await this.#conn.write(at === 0 ? data : data.subarray(at));
        }
        this.#queuedBytes -= data.length;
      }
    } catch (err) {
      this.close(new ConnectionClosedError(`Writing failed: ${_message(err)}`, { cause: err }));
    } finally {
      this.#writer = undefined;
    }
  }
}
