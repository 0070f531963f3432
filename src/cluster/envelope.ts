/**
 * The message one Comet node hands the broker for others: which push (keys,
 * users, room, everyone), its op, who sent it, and the body bytes as they
 * were pushed. The receiving node encodes the goim frame once and fans it
 * out to its own connections.
 *
 * Layout, big-endian: version (u8, 1), kind (u8: 1 keys, 2 mids, 3 room,
 * 4 all), op (i32), header length (u32), a UTF-8 JSON header
 * (`{"from","to","speed"}`), then the body to the end.
 *
 * A push ordered by Redis (streams on) adds to the header its place in its
 * stream, `"stamp":[epoch,offset]` (room, all) or `"stamps":[[epoch,offset],
 * ...]` (mids, by index of `to`), and `"id"`, the sender's number for the
 * push, by which the sender knows its own push when it comes back. The
 * Redis script that orders the push writes these, so the layout stays
 * simple enough to build in Lua. Envelopes without them decode as before.
 *
 * @module
 */
import { ProtocolError } from "../protocol/protocol_error.ts";
import type { Push } from "../server/push.ts";
import type { StreamStamp } from "../server/streams.ts";

/**
 * A push between nodes: the {@linkcode Push} a hub delivers, and the id of
 * the node that sent it. See the module documentation for its bytes.
 */
export type Envelope = Push & {
  /** The id of the node that sent it. */
  from: string;
  /** The sender's number for the push, when it waits for its own push to come back. */
  id?: number;
};

const _VERSION = 1;
const _KINDS = ["keys", "mids", "room", "all"] as const;
const _FIXED = 10;
const _encoder = new TextEncoder();
const _decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes an envelope into one buffer: the body is copied once, here, and the
 * bytes are then shared by every node it is published to.
 *
 * @example
 * ```ts
 * import { decodeEnvelope, encodeEnvelope } from "./envelope.ts";
 * const body = new TextEncoder().encode("hi");
 * const bytes = encodeEnvelope({ kind: "room", from: "n1", op: 1000, room: "live://1", body });
 * console.log(decodeEnvelope(bytes).kind); // "room"
 * ```
 */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  let to: unknown;
  switch (envelope.kind) {
    case "keys":
      to = envelope.keys;
      break;
    case "mids":
      to = envelope.mids;
      break;
    case "room":
      to = envelope.room;
      break;
    case "all":
      to = undefined;
  }
  const fields: Record<string, unknown> = envelope.kind === "all"
    ? { from: envelope.from, speed: envelope.speed }
    : { from: envelope.from, to };
  if (envelope.id !== undefined) fields.id = envelope.id;
  if ((envelope.kind === "room" || envelope.kind === "all") && envelope.stamp !== undefined) {
    fields.stamp = [envelope.stamp.epoch, envelope.stamp.offset];
  }
  if (envelope.kind === "mids" && envelope.stamps !== undefined) {
    fields.stamps = envelope.stamps.map((s) => (s === undefined ? null : [s.epoch, s.offset]));
  }
  const header = _encoder.encode(JSON.stringify(fields));
  const out = new Uint8Array(_FIXED + header.length + envelope.body.length);
  const view = new DataView(out.buffer);
  out[0] = _VERSION;
  out[1] = _KINDS.indexOf(envelope.kind) + 1;
  view.setInt32(2, envelope.op);
  view.setUint32(6, header.length);
  out.set(header, _FIXED);
  out.set(envelope.body, _FIXED + header.length);
  return out;
}

/**
 * Decodes what {@linkcode encodeEnvelope} made. The body is a view into
 * `bytes`, not a copy.
 *
 * @throws {ProtocolError} When the bytes are not an envelope of this version.
 *
 * @example
 * ```ts
 * import { decodeEnvelope, encodeEnvelope } from "./envelope.ts";
 * const bytes = encodeEnvelope({ kind: "mids", from: "n2", op: 1000, mids: [7], body: new Uint8Array() });
 * const envelope = decodeEnvelope(bytes);
 * if (envelope.kind === "mids") console.log(envelope.mids); // [7]
 * ```
 */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (bytes.length < _FIXED) throw new ProtocolError(`Envelope is too short: ${bytes.length}`);
  if (bytes[0] !== _VERSION) throw new ProtocolError(`Unknown envelope version: ${bytes[0]}`);
  const kind = _KINDS[bytes[1]! - 1];
  if (kind === undefined) throw new ProtocolError(`Unknown envelope kind: ${bytes[1]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const op = view.getInt32(2);
  const length = view.getUint32(6);
  if (_FIXED + length > bytes.length) {
    throw new ProtocolError(`Envelope header overruns the message: ${length}`);
  }
  let header: {
    from?: unknown;
    to?: unknown;
    speed?: unknown;
    id?: unknown;
    stamp?: unknown;
    stamps?: unknown;
  };
  try {
    header = JSON.parse(_decoder.decode(bytes.subarray(_FIXED, _FIXED + length)));
  } catch (err) {
    throw new ProtocolError(`Envelope header is not JSON: ${(err as Error).message}`);
  }
  const { from, to, speed, id, stamp, stamps } = header ?? {};
  if (typeof from !== "string") throw new ProtocolError("Envelope header has no sender");
  if (id !== undefined && !Number.isSafeInteger(id)) {
    throw new ProtocolError(`Envelope id is not an integer: ${JSON.stringify(id)}`);
  }
  const body = bytes.subarray(_FIXED + length);
  const extra = id === undefined ? {} : { id: id as number };
  switch (kind) {
    case "keys":
      if (!Array.isArray(to) || !to.every((k) => typeof k === "string")) break;
      return { kind, from, op, keys: to, body, ...extra };
    case "mids": {
      if (!Array.isArray(to) || !to.every(Number.isSafeInteger)) break;
      if (stamps === undefined) return { kind, from, op, mids: to, body, ...extra };
      if (!Array.isArray(stamps) || stamps.length !== to.length) break;
      const read = stamps.map((s) => (s === null ? undefined : _stamp(s)));
      if (read.some((s, i) => s === undefined && stamps[i] !== null)) break;
      return { kind, from, op, mids: to, body, stamps: read, ...extra };
    }
    case "room": {
      if (typeof to !== "string") break;
      if (stamp === undefined) return { kind, from, op, room: to, body, ...extra };
      const read = _stamp(stamp);
      if (read === undefined) break;
      return { kind, from, op, room: to, body, stamp: read, ...extra };
    }
    case "all": {
      if (typeof speed !== "number" || !(speed >= 0)) break;
      if (stamp === undefined) return { kind, from, op, speed, body, ...extra };
      const read = _stamp(stamp);
      if (read === undefined) break;
      return { kind, from, op, speed, body, stamp: read, ...extra };
    }
  }
  throw new ProtocolError(`Envelope header does not fit its kind: ${kind}`);
}

/** `[epoch, offset]` as a stamp, or undefined when it is not one. */
function _stamp(value: unknown): StreamStamp | undefined {
  if (!Array.isArray(value) || value.length !== 2) return undefined;
  const [epoch, offset] = value;
  if (!Number.isSafeInteger(epoch) || epoch < 1 || epoch > 0xffffffff) return undefined;
  if (!Number.isSafeInteger(offset) || offset < 1) return undefined;
  return { epoch, offset };
}
