// Small checks and conversions the goim client's files share.
import type { Frame } from "../protocol/frame.ts";
import type { ClientOptions, ClientStats, StreamPositions } from "./client_options.ts";
import { ConnectionClosedError } from "./connection_closed_error.ts";
import type { Link } from "./link.ts";
import { RequestTimeoutError } from "./request_timeout_error.ts";
import { openWsLink } from "./ws_link.ts";

export const _encoder = new TextEncoder();
export const _decoder = new TextDecoder();
/** Refuses bytes that are not UTF-8, and keeps a BOM: for bodies read as the server wrote them. */
export const _strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
export const _MAX_SEQ = 0x7fffffff;

export function _isInt32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= -0x80000000 && n <= _MAX_SEQ;
}

/** A client URL: `ws:` and `wss:`, or `tcp:` and `tls:` when a link opener is given. */
export function _clientUrl(url: string | URL, hasLink: boolean): URL {
  const parsed = new URL(url);
  const scheme = parsed.protocol;
  if (scheme !== "tcp:" && scheme !== "tls:" && scheme !== "ws:" && scheme !== "wss:") {
    throw new TypeError(`URL must be tcp://, tls://, ws:// or wss://: ${parsed.href}`);
  }
  if (!hasLink && (scheme === "tcp:" || scheme === "tls:")) {
    // Reaching for the TCP link here would pull Deno APIs into browser bundles.
    throw new TypeError(
      `URL needs a link option (openLink) or connect() from mod.ts: ${parsed.href}`,
    );
  }
  return parsed;
}

export function _positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(value > 0 && Number.isFinite(value))) {
    throw new RangeError(`${name} must be a positive number: ${value}`);
  }
  return value;
}

export function _bytes(body: Uint8Array | string): Uint8Array {
  if (typeof body === "string") return _encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  throw new TypeError(`Body must be a Uint8Array or a string: ${typeof body}`);
}

export function _json(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`Value cannot be sent as JSON: ${typeof value}`);
  return text;
}

export function _asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export function _parseReply<T>(reply: Uint8Array): T {
  try {
    return JSON.parse(_decoder.decode(reply)) as T;
  } catch (err) {
    throw new SyntaxError(`Reply is not JSON: ${_asError(err).message}`, { cause: err });
  }
}

export function _emptyStats(): ClientStats {
  return { opens: 0, reconnects: 0, missedHeartbeats: 0, dropped: 0, batches: 0, lateReplies: 0 };
}

export function _opList(ops: readonly number[]): Uint8Array {
  if (!Array.isArray(ops)) throw new TypeError("Ops must be an array of 32-bit integers");
  for (const op of ops) {
    if (!_isInt32(op)) throw new RangeError(`Op must be a 32-bit integer: ${op}`);
  }
  return _encoder.encode(ops.join(","));
}

/**
 * Builds each connection's auth body from the options: `recover` names the
 * positions held, `room` the room the client is in (for the goim fields).
 * Without recovery (or with a raw body that is not a JSON object) the body
 * is the same every time.
 */
export function _authBody(
  options: ClientOptions,
): (recover: StreamPositions, room: string | undefined) => Uint8Array {
  const { auth, mid, key, roomId, platform, accepts, recover = true } = options;
  if (typeof recover !== "boolean") throw new TypeError(`Recover must be a boolean: ${recover}`);
  const goim = [mid, key, roomId, platform, accepts].some((v) => v !== undefined);
  if (auth !== undefined) {
    if (goim) throw new TypeError("Pass either auth or the goim fields (mid, key, ...), not both");
    let bytes: Uint8Array;
    if (typeof auth === "string" || auth instanceof Uint8Array) bytes = _bytes(auth);
    else if (typeof auth !== "object" || auth === null) {
      throw new TypeError(`Auth must be bytes, a string or an object: ${typeof auth}`);
    } else bytes = _encoder.encode(_json(auth));
    return recover ? _withRecover(bytes) : () => bytes;
  }
  if (mid !== undefined && !(Number.isSafeInteger(mid) && mid >= 0)) {
    throw new RangeError(`User id must be a non-negative safe integer: ${mid}`);
  }
  for (const [name, v] of [["Key", key], ["Room id", roomId], ["Platform", platform]] as const) {
    if (v !== undefined && typeof v !== "string") throw new TypeError(`${name} must be a string`);
  }
  if (accepts !== undefined) _opList(accepts);
  const fields = (room: string | undefined) => ({
    mid: mid ?? 0,
    key: key ?? "",
    room_id: room ?? roomId ?? "",
    platform: platform ?? "",
    accepts: accepts ?? [],
  });
  if (!recover) {
    const bytes = _encoder.encode(JSON.stringify(fields(undefined)));
    return () => bytes;
  }
  return (positions, room) =>
    _encoder.encode(JSON.stringify({ ...fields(room), recover: positions }));
}

/**
 * A raw auth body with `recover` spliced in before its closing brace, so the
 * application's own bytes (big numbers, spacing) reach the server as written;
 * a body that is not a JSON object, or has its own `recover`, stays as it is.
 */
function _withRecover(bytes: Uint8Array): (recover: StreamPositions) => Uint8Array {
  let text: string;
  let value: unknown;
  try {
    text = _strictDecoder.decode(bytes);
    value = JSON.parse(text);
  } catch {
    return () => bytes;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || "recover" in value) {
    return () => bytes;
  }
  const end = text.lastIndexOf("}");
  const head = text.slice(0, end) + (Object.keys(value).length === 0 ? "" : ",") + '"recover":';
  const tail = text.slice(end);
  return (recover) => _encoder.encode(head + JSON.stringify(recover) + tail);
}

/** Sends on a link that may already be closing; its loss fails whatever waits on it. */
export function _sendQuietly(link: Link, frame: Uint8Array): void {
  try {
    link.send(frame);
  } catch {
    // The link is closing; its loss fails whatever was waiting on it.
  }
}

/** Opens links to `url` as the options say: their `link` (WebSocket by default), CAs, body limit. */
export function _opener(
  url: URL,
  options: ClientOptions,
): (onFrame: (frame: Frame) => void, signal: AbortSignal) => Promise<Link> {
  const open = options.link ?? openWsLink;
  const { caCerts, maxBody } = options;
  return (onFrame, signal) =>
    open(url, {
      onFrame,
      signal,
      ...(caCerts && { caCerts }),
      ...(maxBody !== undefined && { maxBody }),
    });
}

export function _connectTimedOut(url: URL, ms: number): RequestTimeoutError {
  return new RequestTimeoutError(`Connecting timed out: ${url.href} was not ready within ${ms} ms`);
}

export function _gaveUp(attempts: number, last: Error): ConnectionClosedError {
  return new ConnectionClosedError(
    `Reconnecting gave up after ${attempts} attempts: ${last.message}`,
    { cause: last },
  );
}

/** Aborting the client's signal closes it; `opened` rejects with the signal's own reason. */
export function _aborted(cause: unknown): { reason: Error; ready: unknown } {
  return {
    reason: new ConnectionClosedError("Client closed: the signal was aborted", { cause }),
    ready: cause,
  };
}
