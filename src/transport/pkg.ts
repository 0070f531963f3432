import {
  DEFAULT_MAX_BODY,
  type Frame,
  HEADER_SIZE,
  peekFrame,
  PROTOCOL_VERSION,
} from "../protocol/frame.ts";
import { Op } from "../protocol/op.ts";
import { ProtocolError } from "../protocol/protocol_error.ts";
import { StreamBuffer } from "../protocol/stream_buffer.ts";
import type { Comet } from "../server/comet.ts";
import type { ConnInfo, Wire } from "../server/wire.ts";
import { Acceptor, bindListener, type ListenOptions } from "./acceptor.ts";
import { closeQuietly, type TrafficCounter, trafficCounter, writeAll } from "./traffic.ts";

/** Bytes a connection reads at a time; small for the same reason as in `tcp.ts`. */
const _READ_SIZE = 512;

/**
 * The largest payload each header size can express, as gf's `getPkgOption`
 * sets it: a 4-byte header stops at `math.MaxInt32`, not `MaxUint32`.
 */
const _HEADER_MAX = [0, 0xff, 0xffff, 0xffffff, 0x7fffffff] as const;

const EMPTY = new Uint8Array(0);

/**
 * Size of a pkg length prefix in bytes.
 *
 * @example
 * ```ts
 * import type { PkgHeaderSize } from "./pkg.ts";
 *
 * const headerSize: PkgHeaderSize = 4; // payloads up to 2 GiB - 1, as gf's 4-byte prefix
 * ```
 */
export type PkgHeaderSize = 1 | 2 | 3 | 4;

/** Options for {@linkcode PkgDecoder} and {@linkcode PkgWire}. */
export interface PkgOptions {
  /** Bytes of the big-endian length prefix, 1 to 4. Default 2, as gf's. */
  headerSize?: PkgHeaderSize;
  /**
   * Largest inbound payload in bytes, capped further by what the header can
   * express. Default 4096, goim's body cap: a 4-byte header alone would let a
   * peer make the server buffer 2 GiB.
   */
  maxBody?: number;
}

function _checkHeaderSize(headerSize: number): PkgHeaderSize {
  if (headerSize !== 1 && headerSize !== 2 && headerSize !== 3 && headerSize !== 4) {
    throw new RangeError(`Header size must be 1, 2, 3 or 4: ${headerSize}`);
  }
  return headerSize;
}

function _checkMaxBody(maxBody: number): number {
  if (!Number.isSafeInteger(maxBody) || maxBody < 0) {
    throw new RangeError(`Max body must be a non-negative integer: ${maxBody}`);
  }
  return maxBody;
}

/** Reads a big-endian unsigned length; multiplying keeps a 4-byte value unsigned. */
function _readLength(bytes: Uint8Array, at: number, size: number): number {
  let n = 0;
  for (let i = 0; i < size; i++) n = n * 256 + bytes[at + i]!;
  return n;
}

function _writeLength(bytes: Uint8Array, at: number, size: number, n: number): void {
  for (let i = size - 1; i >= 0; i--) {
    bytes[at + i] = n & 0xff;
    n >>>= 8;
  }
}

/**
 * The largest payload a pkg header of `headerSize` bytes can carry: 255,
 * 65535, 16777215, or 2147483647 for 4 bytes (gf's limit).
 *
 * @throws {RangeError} When `headerSize` is not 1 to 4.
 *
 * @example
 * ```ts
 * import { pkgHeaderMax } from "./pkg.ts";
 * console.log(pkgHeaderMax(2)); // 65535
 * ```
 */
export function pkgHeaderMax(headerSize: PkgHeaderSize): number {
  return _HEADER_MAX[_checkHeaderSize(headerSize)];
}

/**
 * Encodes one pkg package: the length prefix, then `payload`.
 *
 * @param payload The package's payload.
 * @param headerSize Bytes of the length prefix. Default 2.
 * @returns A new buffer of `headerSize + payload.length` bytes.
 * @throws {RangeError} When `headerSize` is not 1 to 4, or the payload is
 * longer than the header can express.
 *
 * @example
 * ```ts
 * import { encodePkg } from "./pkg.ts";
 * const bytes = encodePkg(new TextEncoder().encode("hi"), 2);
 * console.log(bytes); // Uint8Array(4) [ 0, 2, 104, 105 ]
 * ```
 */
export function encodePkg(payload: Uint8Array, headerSize: PkgHeaderSize = 2): Uint8Array {
  const max = pkgHeaderMax(headerSize);
  if (payload.length > max) {
    throw new RangeError(
      `Payload is too large for a ${headerSize}-byte header: ${payload.length} bytes`,
    );
  }
  const out = new Uint8Array(headerSize + payload.length);
  _writeLength(out, 0, headerSize, payload.length);
  out.set(payload, headerSize);
  return out;
}

/**
 * A streaming decoder of gf gtcp "pkg" packages. Feed it byte chunks exactly
 * as a socket returns them (a package split across reads, many packages in
 * one read) and take whole payloads out with {@linkcode PkgDecoder.next}.
 *
 * Like goim's `FrameDecoder`, it borrows the chunk given to `push` until
 * `next` returns `undefined`; by then it has copied any partial package it
 * still needs, so the caller may reuse its read buffer. Payloads are copies.
 *
 * @example
 * ```ts
 * import { encodePkg, PkgDecoder } from "./pkg.ts";
 *
 * const decoder = new PkgDecoder({ headerSize: 2 });
 * const bytes = encodePkg(new TextEncoder().encode("hello"), 2);
 * decoder.push(bytes.subarray(0, 3));
 * console.log(decoder.next()); // undefined: only part of a package so far
 * decoder.push(bytes.subarray(3));
 * console.log(decoder.next()?.length); // 5
 * ```
 */
export class PkgDecoder {
  /** Bytes of the length prefix. */
  readonly headerSize: PkgHeaderSize;
  /** Largest payload accepted: the smaller of `maxBody` and the header's limit. */
  readonly maxPayload: number;
  #buf: StreamBuffer;
  #error: ProtocolError | undefined;

  /**
   * Creates a decoder with an empty buffer.
   *
   * @throws {RangeError} When `headerSize` is not 1 to 4 or `maxBody` is not a
   * non-negative integer.
   */
  constructor(options: PkgOptions = {}) {
    this.headerSize = _checkHeaderSize(options.headerSize ?? 2);
    const maxBody = _checkMaxBody(options.maxBody ?? DEFAULT_MAX_BODY);
    this.maxPayload = Math.min(maxBody, _HEADER_MAX[this.headerSize]);
    this.#buf = new StreamBuffer(this.headerSize);
  }

  /** Bytes held for a package not yet complete. */
  get buffered(): number {
    return this.#buf.buffered;
  }

  /** Adds bytes read from the peer; ignored once the decoder has failed. */
  push(chunk: Uint8Array): void {
    if (this.#error) return;
    this.#buf.push(chunk);
  }

  /**
   * Returns the next whole payload (possibly empty), or `undefined` when more
   * bytes are needed.
   *
   * @throws {ProtocolError} When a length exceeds {@linkcode PkgDecoder.maxPayload};
   * the decoder then stays failed and throws the same error again.
   */
  next(): Uint8Array | undefined {
    if (this.#error) throw this.#error;
    const buf = this.#buf;
    if (buf.pendingLen > 0) return this.#nextFromPending();
    const chunk = buf.chunk;
    const pos = buf.pos;
    const avail = chunk.length - pos;
    const h = this.headerSize;
    if (avail < h) {
      buf.hold();
      return undefined;
    }
    const size = h + this.#check(chunk, pos);
    if (avail < size) {
      buf.stash();
      return undefined;
    }
    buf.pos = pos + size;
    return size === h ? EMPTY : chunk.slice(pos + h, pos + size);
  }

  /**
   * Pushes `chunk` and yields every payload that is complete with it.
   *
   * @throws {ProtocolError} When a length exceeds the limit.
   */
  *decode(chunk: Uint8Array): Generator<Uint8Array, void, undefined> {
    this.push(chunk);
    for (let p = this.next(); p !== undefined; p = this.next()) yield p;
  }

  #check(bytes: Uint8Array, at: number): number {
    const length = _readLength(bytes, at, this.headerSize);
    if (length > this.maxPayload) {
      this.#error = new ProtocolError(
        `Package exceeds the limit of ${this.maxPayload} bytes: ${length}`,
      );
      this.#buf.clear();
      throw this.#error;
    }
    return length;
  }

  #nextFromPending(): Uint8Array | undefined {
    const buf = this.#buf;
    const h = this.headerSize;
    if (buf.pendingLen < h) {
      buf.fill(h);
      if (buf.pendingLen < h) return undefined;
    }
    const size = h + this.#check(buf.pending!, 0);
    const p = buf.take(size);
    if (p === undefined) return undefined;
    return size === h ? EMPTY : p.subarray(h, size);
  }
}

/**
 * gf gtcp's "pkg" framing as a Comet transport. The framing has no type
 * byte, so the wire maps packages onto goim ops by position and size:
 *
 * - inbound, the first package is the auth body (goim's JSON) and becomes
 *   op 7; after it an empty package is a heartbeat (op 2) and any other is an
 *   upstream message (op 4) with an incrementing seq;
 * - outbound, a heartbeat reply (op 3) is an empty package, a message reply
 *   (op 5) and every push (op ≥ 1000, also inside an op-9 batch) is one
 *   package of its body; auth, disconnect, room and sub replies are not sent,
 *   as a client could not tell them from pushes.
 *
 * A protocol violation (a length over the limit) closes the socket at once,
 * as nothing queued could reach a client that no longer parses the stream.
 *
 * @example
 * ```ts ignore
 * import { PkgWire } from "./pkg.ts";
 * const conn = await Deno.connect({ port: 3103 });
 * const wire = new PkgWire(conn, { headerSize: 2, maxBody: 4096 });
 * ```
 */
export class PkgWire implements Wire {
  /** Transport facts for the operator. */
  readonly info: ConnInfo;
  #conn: Deno.Conn;
  #decoder: PkgDecoder;
  #headerSize: PkgHeaderSize;
  #maxOut: number;
  #buf: Uint8Array | undefined;
  #authed = false;
  #seq = 0;
  #skipped = 0;
  #closed = false;
  #traffic: TrafficCounter = trafficCounter("pkg");

  /**
   * Wraps an accepted connection. Its bytes count towards
   * {@linkcode trafficCounter}`("pkg")`.
   *
   * @param conn An accepted connection.
   * @param options Header size (default 2) and inbound payload cap (default 4096).
   * @throws {RangeError} When `headerSize` is not 1 to 4 or `maxBody` is not a
   * non-negative integer.
   */
  constructor(conn: Deno.Conn, options: PkgOptions = {}) {
    this.#decoder = new PkgDecoder(options);
    this.#headerSize = this.#decoder.headerSize;
    this.#maxOut = _HEADER_MAX[this.#headerSize];
    this.#conn = conn;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.info = { transport: "pkg", remoteAddr: { hostname: addr.hostname, port: addr.port } };
  }

  /** Bytes of the length prefix. */
  get headerSize(): PkgHeaderSize {
    return this.#headerSize;
  }

  /** Outbound frames dropped because their body was too large for the header. */
  get skipped(): number {
    return this.#skipped;
  }

  /**
   * Reads the next package as a frame; `null` at end of stream or once closed.
   *
   * @throws {ProtocolError} When a length exceeds the limit; the socket is
   * closed first.
   */
  async read(): Promise<Frame | null> {
    for (;;) {
      let payload: Uint8Array | undefined;
      try {
        payload = this.#decoder.next();
      } catch (err) {
        this.close();
        throw err;
      }
      if (payload !== undefined) return this.#toFrame(payload);
      if (this.#closed) return null;
      this.#buf ??= new Uint8Array(_READ_SIZE);
      let n: number | null;
      try {
        n = await this.#conn.read(this.#buf);
      } catch {
        return null; // reset by peer, or closed under us
      }
      if (n === null) return null;
      this.#traffic.bytesIn += n;
      this.#decoder.push(this.#buf.subarray(0, n));
    }
  }

  #toFrame(body: Uint8Array): Frame {
    if (!this.#authed) {
      this.#authed = true;
      return { ver: PROTOCOL_VERSION, op: Op.Auth, seq: 0, body };
    }
    if (body.length === 0) return { ver: PROTOCOL_VERSION, op: Op.Heartbeat, seq: 0, body };
    // Wraps within int32 so the seq stays a valid goim field.
    this.#seq = this.#seq === 0x7fffffff ? 1 : this.#seq + 1;
    return { ver: PROTOCOL_VERSION, op: Op.SendMsg, seq: this.#seq, body };
  }

  /**
   * Re-frames `count` goim frames as pkg packages, all in one new buffer.
   * Frames with nothing to send yield no bytes; when none is left, the result
   * is empty.
   *
   * @throws {ProtocolError} When a chunk is not a well-formed goim frame.
   */
  encode(chunks: readonly Uint8Array[], count: number, _bytes: number): Uint8Array {
    // Measure first so the flush costs exactly one allocation of exactly its size.
    let size = 0;
    for (let i = 0; i < count; i++) size = this.#pack(chunks[i]!, undefined, size, false);
    if (size === 0) return EMPTY;
    const out = new Uint8Array(size);
    let at = 0;
    for (let i = 0; i < count; i++) at = this.#pack(chunks[i]!, out, at, false);
    return out;
  }

  /**
   * Walks the frames in `frames`, writing their packages into `out` at `at`,
   * or only measuring them when `out` is undefined; returns the offset after.
   * One walk for both passes keeps the measured size and the bytes in step.
   */
  #pack(frames: Uint8Array, out: Uint8Array | undefined, at: number, nested: boolean): number {
    const h = this.#headerSize;
    for (let off = 0; off < frames.length;) {
      const { packLen, op } = peekFrame(frames, off);
      const body = off + HEADER_SIZE;
      off += packLen;
      let length: number;
      if (op === Op.HeartbeatReply) {
        length = 0;
      } else if (op === Op.SendMsgReply || op >= 1000) {
        length = packLen - HEADER_SIZE;
      } else {
        if (op === Op.Raw && !nested) at = this.#pack(frames.subarray(body, off), out, at, true);
        continue;
      }
      if (length > this.#maxOut) {
        if (out === undefined) this.#skipped++;
        continue;
      }
      if (out !== undefined) {
        _writeLength(out, at, h, length);
        if (length > 0) out.set(frames.subarray(body, body + length), at + h);
      }
      at += h + length;
    }
    return at;
  }

  /** Writes all of `data`, looping over partial writes; `true`: the socket took part at first. */
  write(data: Uint8Array): Promise<boolean> {
    return writeAll(this.#conn, data, this.#traffic);
  }

  /** Closes the socket. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#conn);
  }
}

/**
 * Where to listen, and the pkg header size.
 *
 * @example
 * ```ts
 * import type { PkgListenOptions } from "./pkg.ts";
 *
 * const pkg: PkgListenOptions = { hostname: "0.0.0.0", port: 3104, headerSize: 4 };
 * ```
 */
export interface PkgListenOptions extends ListenOptions {
  /** Bytes of the length prefix, 1 to 4. Default 2. */
  headerSize?: PkgHeaderSize;
}

/**
 * Listens on TCP and serves gf gtcp's pkg framing with `comet`.
 *
 * @throws {RangeError} When `headerSize` is not 1 to 4 (before binding).
 *
 * @example
 * ```ts ignore
 * import { Comet } from "../server/comet.ts";
 * import { listenPkg } from "./pkg.ts";
 *
 * const comet = new Comet();
 * const acceptor = listenPkg(comet, { hostname: "127.0.0.1", port: 3103, headerSize: 2 });
 * ```
 */
export function listenPkg(comet: Comet, options: PkgListenOptions): Acceptor {
  const wireOptions = {
    headerSize: _checkHeaderSize(options.headerSize ?? 2),
    maxBody: comet.maxBody,
  };
  return new Acceptor(
    comet,
    bindListener(options, undefined, "pkg"),
    "pkg",
    (conn) => new PkgWire(conn, wireOptions),
  );
}
