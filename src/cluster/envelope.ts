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
 * @module
 */
import { ProtocolError } from "../protocol/protocol_error.ts";
import type { Push } from "../server/push.ts";

/**
 * A push between nodes: the {@linkcode Push} a hub delivers, and the id of
 * the node that sent it. See the module documentation for its bytes.
 */
export type Envelope = Push & {
  /** The id of the node that sent it. */
  from: string;
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
  const header = _encoder.encode(
    JSON.stringify(
      envelope.kind === "all"
        ? { from: envelope.from, speed: envelope.speed }
        : { from: envelope.from, to },
    ),
  );
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
  let header: { from?: unknown; to?: unknown; speed?: unknown };
  try {
    header = JSON.parse(_decoder.decode(bytes.subarray(_FIXED, _FIXED + length)));
  } catch (err) {
    throw new ProtocolError(`Envelope header is not JSON: ${(err as Error).message}`);
  }
  const { from, to, speed } = header ?? {};
  if (typeof from !== "string") throw new ProtocolError("Envelope header has no sender");
  const body = bytes.subarray(_FIXED + length);
  switch (kind) {
    case "keys":
      if (!Array.isArray(to) || !to.every((k) => typeof k === "string")) break;
      return { kind, from, op, keys: to, body };
    case "mids":
      if (!Array.isArray(to) || !to.every(Number.isSafeInteger)) break;
      return { kind, from, op, mids: to, body };
    case "room":
      if (typeof to !== "string") break;
      return { kind, from, op, room: to, body };
    case "all":
      if (typeof speed !== "number" || !(speed >= 0)) break;
      return { kind, from, op, speed, body };
  }
  throw new ProtocolError(`Envelope header does not fit its kind: ${kind}`);
}
