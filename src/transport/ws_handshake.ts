import { createHash } from "node:crypto";
import { ProtocolError } from "../protocol/protocol_error.ts";
import { type TrafficCounter, writeAll } from "./traffic.ts";

/** The GUID RFC 6455 appends to a client's key to derive `Sec-WebSocket-Accept`. */
const _GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
// Exactly the canonical base64 spellings of 16 bytes: the last digit carries 2 bits.
const _KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;
const _TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const _FIRST_READ = 1024;
const _encoder = new TextEncoder();

const _REASONS: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
};

/**
 * An HTTP request that cannot be upgraded to a WebSocket. `status` is the
 * HTTP status it was answered with.
 *
 * @example
 * ```ts
 * import { HandshakeError } from "./ws_handshake.ts";
 * const err = new HandshakeError(404, "Request path is not /sub: /");
 * console.log(err.status); // 404
 * ```
 */
export class HandshakeError extends ProtocolError {
  /** The HTTP status of the refusal. */
  readonly status: number;

  /** Creates an error answered with HTTP status `status`. */
  constructor(status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "HandshakeError";
    this.status = status;
  }
}

/** An HTTP/1.1 request line and header fields. */
export interface RequestHead {
  /** Request method, e.g. `GET`. */
  method: string;
  /** Request target as sent, e.g. `/sub?token=1`. */
  target: string;
  /** Header fields; repeated ones are joined with `, `. */
  headers: Headers;
}

/** Options for {@linkcode acceptUpgrade}. */
export interface WsHandshakeOptions {
  /** The one path upgrades are accepted on; a query string may follow it. Default `/sub`. */
  path?: string;
  /** Largest request head in bytes, request line and terminating blank line included. Default 8 KiB. */
  maxHeadSize?: number;
}

/** A completed upgrade. */
export interface WsUpgrade {
  /** Request target as sent, query string included. */
  target: string;
  /** The request's header fields (cookie, origin, user agent ...). */
  headers: Headers;
  /** Bytes the client sent after the head: the start of its first frames. */
  rest: Uint8Array;
}

function _clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}...` : s;
}

// UTF-8 and Latin-1 agree on ASCII; the runtime's decoder is 20 times faster than spreading bytes.
const _ascii = new TextDecoder();

/** One character per byte: header values are bytes, and `Headers` takes them that way. */
function _latin1(bytes: Uint8Array): string {
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return _ascii.decode(bytes);
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return s;
}

function _hasToken(value: string | null, token: string): boolean {
  if (value === null) return false;
  return value.split(",").some((part) => part.trim().toLowerCase() === token);
}

/**
 * Derives `Sec-WebSocket-Accept` from the client's `Sec-WebSocket-Key`:
 * base64 of the SHA-1 of the key followed by RFC 6455's GUID.
 *
 * Synchronous, through `node:crypto`: `crypto.subtle.digest` costs about 22 µs
 * of CPU per call in Deno 2.9 (it hashes on a blocking-pool thread), the
 * pure-JS SHA-1 used before about 3.4 µs, `createHash` about 1.4 µs
 * (bench/ws_accept_bench.ts), for every WebSocket handshake.
 *
 * @example
 * ```ts
 * import { websocketAccept } from "./ws_handshake.ts";
 * console.log(websocketAccept("dGhlIHNhbXBsZSBub25jZQ==")); // s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
 * ```
 */
export function websocketAccept(key: string): string {
  return createHash("sha1").update(key + _GUID).digest("base64");
}

/**
 * Parses an HTTP/1.1 request head: the bytes up to and including the blank
 * line that ends it (the blank line itself may be left off).
 *
 * @throws {HandshakeError} (400) When the request line or a header line is malformed.
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "./ws_handshake.ts";
 * const head = new TextEncoder().encode("GET /sub HTTP/1.1\r\nHost: a\r\n\r\n");
 * console.log(parseRequestHead(head).headers.get("host")); // a
 * ```
 */
export function parseRequestHead(bytes: Uint8Array): RequestHead {
  const lines = _latin1(bytes).split("\r\n");
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const parts = (lines[0] ?? "").split(" ");
  if (parts.length !== 3 || !_TOKEN.test(parts[0]!) || parts[1] === "") {
    throw new HandshakeError(400, `Request line is malformed: ${_clip(lines[0] ?? "")}`);
  }
  const [method, target, version] = parts as [string, string, string];
  if (version !== "HTTP/1.1") {
    throw new HandshakeError(400, `HTTP version is not 1.1: ${_clip(version)}`);
  }
  const headers = new Headers();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    // A name with no colon, or a folded line, is refused rather than guessed at (RFC 9112).
    if (!_TOKEN.test(name)) {
      throw new HandshakeError(400, `Header line is malformed: ${_clip(line)}`);
    }
    try {
      headers.append(name, line.slice(colon + 1).trim());
    } catch {
      throw new HandshakeError(400, `Header value is malformed: ${_clip(name)}`);
    }
  }
  return { method, target, headers };
}

/** The path of an origin-form (`/sub?x`) or absolute-form (`http://h/sub`) target. */
function _path(target: string): string | undefined {
  if (target.startsWith("/")) {
    const q = target.indexOf("?");
    return q < 0 ? target : target.slice(0, q);
  }
  if (/^(https?|wss?):\/\//i.test(target)) return URL.parse(target)?.pathname;
  return undefined;
}

/**
 * Checks that `request` is a WebSocket upgrade (RFC 6455, section 4.2.1) for
 * `path`, and returns its `Sec-WebSocket-Key`.
 *
 * @throws {HandshakeError} With the status to answer: 405 for a method other
 * than GET, 404 for another path, 426 for a version other than 13, 400 for
 * anything else.
 */
function _checkUpgrade(request: RequestHead, path: string): string {
  const { method, target, headers } = request;
  if (method !== "GET") throw new HandshakeError(405, `Request method is not GET: ${method}`);
  const actual = _path(target);
  if (actual === undefined) {
    throw new HandshakeError(400, `Request target is malformed: ${_clip(target)}`);
  }
  if (actual !== path) {
    throw new HandshakeError(404, `Request path is not ${path}: ${_clip(actual)}`);
  }
  if (!headers.has("host")) throw new HandshakeError(400, "Request has no Host header");
  const upgrade = headers.get("upgrade");
  if (!_hasToken(upgrade, "websocket")) {
    throw new HandshakeError(
      400,
      `Upgrade header does not name websocket: ${_clip(upgrade ?? "")}`,
    );
  }
  const connection = headers.get("connection");
  if (!_hasToken(connection, "upgrade")) {
    throw new HandshakeError(
      400,
      `Connection header does not include upgrade: ${_clip(connection ?? "")}`,
    );
  }
  const version = headers.get("sec-websocket-version");
  if (version?.trim() !== "13") {
    throw new HandshakeError(426, `WebSocket version is not 13: ${_clip(version ?? "")}`);
  }
  const key = headers.get("sec-websocket-key")?.trim() ?? "";
  if (!_KEY.test(key)) {
    throw new HandshakeError(400, `WebSocket key is not 16 bytes in base64: ${_clip(key)}`);
  }
  return key;
}

/** Index just past the blank line ending the head, searching from `from`; -1 if absent. */
function _headEnd(buf: Uint8Array, from: number, end: number): number {
  for (let i = Math.max(0, from - 3); i + 3 < end; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i + 4;
  }
  return -1;
}

/**
 * Reads a request head of at most `max` bytes.
 *
 * @returns The head and the bytes read past it, or `null` when the peer left first.
 * @throws {HandshakeError} (431) When no head ends within `max` bytes.
 */
async function _readHead(
  conn: Deno.Conn,
  max: number,
): Promise<{ head: Uint8Array; rest: Uint8Array } | null> {
  // Most upgrade requests fit the first read; cookies may need one doubling or two.
  let buf = new Uint8Array(Math.min(_FIRST_READ, max));
  let len = 0;
  for (;;) {
    if (len === buf.length) {
      if (len >= max) throw new HandshakeError(431, `Request head exceeds ${max} bytes`);
      const grown = new Uint8Array(Math.min(max, len * 2));
      grown.set(buf);
      buf = grown;
    }
    let n: number | null;
    try {
      n = await conn.read(buf.subarray(len));
    } catch {
      return null; // reset by the peer, or closed under us
    }
    if (n === null) return null;
    const end = _headEnd(buf, len, len + n);
    len += n;
    if (end >= 0) return { head: buf.subarray(0, end), rest: buf.subarray(end, len) };
  }
}

// The HTTP exchange is not goim traffic: its bytes go to a counter nobody reads.
const _UNCOUNTED: TrafficCounter = { bytesIn: 0, bytesOut: 0 };

/** A plain-text refusal that ends the connection. */
function _refusal(err: HandshakeError): Uint8Array {
  const reason = _REASONS[err.status] ?? "Bad Request";
  const body = `${reason}\n`;
  let extra = "";
  if (err.status === 405) extra = "Allow: GET\r\n";
  if (err.status === 426) extra = "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n";
  return _encoder.encode(
    `HTTP/1.1 ${err.status} ${reason}\r\nConnection: close\r\n${extra}` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  );
}

/**
 * Runs the server side of the WebSocket opening handshake on a fresh
 * connection: reads the request head, checks it, and answers
 * `101 Switching Protocols`, or a plain 4xx with `Connection: close` when the
 * request is not an upgrade it accepts. Closing the connection is left to the
 * caller either way.
 *
 * There is no timeout here: the caller bounds the handshake by closing the
 * connection, which makes this resolve `null`.
 *
 * @returns The upgrade, or `null` when the peer left (or the connection was
 * closed) before the head was complete.
 * @throws {HandshakeError} When the request was refused; the refusal has been sent.
 * @throws {TypeError} When `path` does not start with `/`.
 * @throws {RangeError} When `maxHeadSize` is not a positive integer.
 *
 * @example
 * ```ts ignore
 * import { acceptUpgrade } from "./ws_handshake.ts";
 * using listener = Deno.listen({ port: 3102 });
 * const conn = await listener.accept();
 * const upgrade = await acceptUpgrade(conn, { path: "/sub" });
 * console.log(upgrade?.headers.get("origin"));
 * ```
 */
export async function acceptUpgrade(
  conn: Deno.Conn,
  options: WsHandshakeOptions = {},
): Promise<WsUpgrade | null> {
  const path = options.path ?? "/sub";
  if (!path.startsWith("/")) throw new TypeError(`Path must start with "/": ${path}`);
  const max = options.maxHeadSize ?? 8192;
  if (!Number.isSafeInteger(max) || max < 16) {
    throw new RangeError(`Max head size must be an integer of at least 16: ${max}`);
  }
  let upgrade: WsUpgrade;
  let key: string;
  try {
    const read = await _readHead(conn, max);
    if (read === null) return null;
    const request = parseRequestHead(read.head);
    key = _checkUpgrade(request, path);
    upgrade = { target: request.target, headers: request.headers, rest: read.rest };
  } catch (err) {
    if (!(err instanceof HandshakeError)) throw err;
    try {
      await writeAll(conn, _refusal(err), _UNCOUNTED);
    } catch {
      // The peer is gone; it was being refused anyway.
    }
    throw err;
  }
  const accept = websocketAccept(key);
  await writeAll(
    conn,
    _encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    ),
    _UNCOUNTED,
  );
  return upgrade;
}
