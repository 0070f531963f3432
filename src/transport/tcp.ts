import { FrameDecoder } from "../protocol/decoder.ts";
import type { Frame } from "../protocol/frame.ts";
import type { Comet } from "../server/comet.ts";
import type { ConnInfo, Wire } from "../server/wire.ts";
import { Acceptor, bindListener, type ListenOptions, type TlsCertificate } from "./acceptor.ts";
import { BatchCache } from "./batch_cache.ts";
import { BufferPool } from "./buffer_pool.ts";
import { StreamWire } from "./stream_wire.ts";
import { closeQuietly, type TrafficCounter, trafficCounter, writeAll } from "./traffic.ts";

/**
 * Bytes a connection reads at a time. Small on purpose: idle connections
 * dominate a push server's memory, and the decoder stitches larger frames
 * from several reads.
 */
const _READ_SIZE = 512;

// One for every TCP wire: a room round drains the same frames on connection after connection.
const _batches = new BatchCache();
// A TCP wire's encoding is the frames back to back: the same bytes on every wire.
const _SHARED_ENCODING = {};

/**
 * goim's binary protocol over a TCP (or TLS) stream: the frame decoder on the
 * read side; on the write side, a batch of frames is simply the frames back
 * to back, written with one call.
 *
 * @example
 * ```ts ignore
 * import { TcpWire } from "./tcp.ts";
 * const conn = await Deno.connect({ port: 3101 });
 * const wire = new TcpWire(conn, { maxBody: 4096 });
 * ```
 */
export class TcpWire extends StreamWire implements Wire {
  /**
   * Where every TCP wire takes its read buffer from: views into shared
   * slabs, not an `ArrayBuffer` each. A wire gives its buffer back once
   * closed with no read pending.
   */
  static readonly readBuffers: BufferPool = new BufferPool(_READ_SIZE);

  #profile: _Profile;
  /** Held only while bytes of a frame are pending: an idle connection between frames has none. */
  #decoder: FrameDecoder | undefined;
  #closed = false;

  /**
   * Wraps an accepted connection. Its bytes count towards
   * {@linkcode trafficCounter} of its transport name.
   *
   * @param conn An accepted connection.
   * @param options `maxBody` caps inbound bodies; `transport` names it (`"tcp"`, `"tls"`).
   */
  constructor(conn: Deno.Conn, options: { maxBody?: number; transport?: string } = {}) {
    super(conn);
    const maxBody = options.maxBody ?? 4096;
    // Made now to check maxBody; let go of after the first frames.
    this.#decoder = new FrameDecoder({ maxBody });
    this.#profile = _profile(options.transport ?? "tcp", maxBody);
  }

  /**
   * Transport facts for the operator: made on each call from what the wire
   * holds anyway, so an idle connection keeps no object for them.
   */
  get info(): ConnInfo {
    // Deno's own address object rather than a copy.
    return {
      transport: this.#profile.transport,
      remoteAddr: this._conn.remoteAddr as Deno.NetAddr,
    };
  }

  /** The read buffers' pool. */
  protected override get _pool(): BufferPool {
    return TcpWire.readBuffers;
  }

  /** The next buffered frame; `null` once closed; `undefined` when more bytes are needed. */
  protected override _step(): Frame | null | undefined {
    // Closed means closed: frames still buffered from the last read are not handed out.
    if (this.#closed) return null;
    const decoder = this.#decoder;
    if (decoder === undefined) return undefined;
    const frame = decoder.next();
    // Nothing pending: the decoder goes (about 190 bytes per idle connection) until bytes come.
    if (frame === undefined && decoder.buffered === 0) this.#decoder = undefined;
    return frame;
  }

  /** Counts the bytes read and hands them to the decoder, made again if it went. */
  protected override _take(bytes: Uint8Array): void {
    const profile = this.#profile;
    profile.traffic.bytesIn += bytes.length;
    (this.#decoder ??= new FrameDecoder({ maxBody: profile.maxBody })).push(bytes);
  }

  /** Whether {@linkcode TcpWire.close} was called. */
  protected override _isClosed(): boolean {
    return this.#closed;
  }

  /**
   * Frames back to back; a single frame is passed through without a copy,
   * and the same frames as the last batch encoded get the same bytes.
   */
  encode(chunks: readonly Uint8Array[], count: number, bytes: number): Uint8Array {
    if (count === 1) return chunks[0]!;
    const cached = _batches.get(chunks, count);
    if (cached !== undefined) return cached;
    const out = new Uint8Array(bytes);
    let at = 0;
    for (let i = 0; i < count; i++) {
      const chunk = chunks[i]!;
      out.set(chunk, at);
      at += chunk.length;
    }
    _batches.set(chunks, count, out);
    return out;
  }

  /**
   * The same for every TCP wire: see {@linkcode Wire.sharedEncoding}. A
   * getter, so it costs no memory per connection.
   */
  get sharedEncoding(): object {
    return _SHARED_ENCODING;
  }

  /** Writes all of `data`, looping over partial writes; `true`: the socket took part at first. */
  write(data: Uint8Array): Promise<boolean> {
    return writeAll(this._conn, data, this.#profile.traffic);
  }

  /** Closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this._conn);
    // The decoder may still borrow the read buffer's bytes; it is never used again.
    this.#decoder = undefined;
    this._giveBack();
  }
}

/** What the TCP wires of one listener share, so each holds one field for it. */
interface _Profile {
  readonly transport: string;
  readonly maxBody: number;
  readonly traffic: TrafficCounter;
}

const _profiles: _Profile[] = [];

/** The shared profile; a listener's connections all ask for the same one, found first. */
function _profile(transport: string, maxBody: number): _Profile {
  for (let i = 0; i < _profiles.length; i++) {
    const p = _profiles[i]!;
    if (p.transport === transport && p.maxBody === maxBody) return p;
  }
  const profile = { transport, maxBody, traffic: trafficCounter(transport) };
  _profiles.unshift(profile);
  return profile;
}

/** Options for {@linkcode listenTcp}. */
export interface TcpListenOptions extends ListenOptions {
  /** Serve over TLS with this certificate (transport `"tls"`). */
  tls?: TlsCertificate;
}

/**
 * Listens on TCP (or TLS) and serves goim's binary protocol with `comet`.
 *
 * @example
 * ```ts ignore
 * import { Comet } from "../server/comet.ts";
 * import { listenTcp } from "./tcp.ts";
 *
 * const comet = new Comet();
 * const acceptor = listenTcp(comet, { hostname: "127.0.0.1", port: 3101 });
 * ```
 */
export function listenTcp(comet: Comet, options: TcpListenOptions): Acceptor {
  const transport = options.tls ? "tls" : "tcp";
  const maxBody = comet.maxBody;
  return new Acceptor(
    comet,
    bindListener(options, options.tls, options.tls ? "tcpTls" : "tcp"),
    transport,
    (conn) => new TcpWire(conn, { maxBody, transport }),
  );
}
