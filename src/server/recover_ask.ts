/**
 * The `recover` field of an auth body (docs/protocol.md, section 8.2): how a
 * client opts in to streams and names the positions it holds. The hub reads
 * it itself, whatever the operator, when the body is a JSON object.
 *
 * @module
 */

import { MAX_OFFSET } from "../protocol/stream_push.ts";
import { MAX_ID_LENGTH } from "./defaults.ts";
import type { StreamStamp } from "./streams.ts";

/**
 * The positions a client names in `recover`; each is optional.
 *
 * @example
 * ```ts
 * import type { RecoverAsk } from "./recover_ask.ts";
 * const ask: RecoverAsk = { room: { id: "live://1", epoch: 7, offset: 41 }, all: { epoch: 3, offset: 2 } };
 * console.log(ask.room?.offset); // 41
 * ```
 */
export interface RecoverAsk {
  /** The room it was in, and its position there. */
  readonly room?: StreamStamp & { readonly id: string };
  /** Its position in its user's stream. */
  readonly mid?: StreamStamp;
  /** Its position in the stream of pushes to everyone. */
  readonly all?: StreamStamp;
}

const _decoder = new TextDecoder();
// `"recover"`: a body without these bytes is not parsed, so goim clients pay nothing.
const _NEEDLE = new TextEncoder().encode('"recover"');

/** Whether `body` holds the bytes of `"recover"`. */
function _mentions(body: Uint8Array): boolean {
  const first = _NEEDLE[0]!;
  const last = body.length - _NEEDLE.length;
  outer: for (let i = body.indexOf(first); i >= 0 && i <= last; i = body.indexOf(first, i + 1)) {
    for (let j = 1; j < _NEEDLE.length; j++) if (body[i + j] !== _NEEDLE[j]) continue outer;
    return true;
  }
  return false;
}

function _isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function _position(field: string, value: unknown): StreamStamp {
  if (!_isObject(value)) throw new TypeError(`Recover ${field} must be an object`);
  const { epoch, offset } = value;
  if (!Number.isInteger(epoch) || (epoch as number) < 0 || (epoch as number) > 0xffffffff) {
    throw new RangeError(
      `Recover ${field}.epoch must be an integer from 0 to 2^32 - 1: ${JSON.stringify(epoch)}`,
    );
  }
  if (!Number.isInteger(offset) || (offset as number) < 0 || (offset as number) > MAX_OFFSET) {
    throw new RangeError(
      `Recover ${field}.offset must be an integer from 0 to 2^53 - 1: ${JSON.stringify(offset)}`,
    );
  }
  return { epoch: epoch as number, offset: offset as number };
}

/**
 * The `recover` field of an auth body, checked; undefined when the body is
 * not a JSON object with that field (the client did not opt in).
 *
 * @throws {TypeError} When `recover` or a position in it is not an object, or a room id not a string.
 * @throws {RangeError} When an epoch or offset is not an integer in its range.
 *
 * @example
 * ```ts
 * import { readRecover } from "./recover_ask.ts";
 * const body = new TextEncoder().encode('{"mid":7,"recover":{"mid":{"epoch":9,"offset":3}}}');
 * console.log(readRecover(body)?.mid); // { epoch: 9, offset: 3 }
 * ```
 */
export function readRecover(body: Uint8Array): RecoverAsk | undefined {
  if (!_mentions(body)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(_decoder.decode(body));
  } catch {
    // Not JSON: whatever it is, it is the operator's to read.
    return undefined;
  }
  if (!_isObject(parsed) || !Object.hasOwn(parsed, "recover")) return undefined;
  const recover = parsed.recover;
  if (!_isObject(recover)) throw new TypeError("Recover must be an object");
  const ask: { -readonly [K in keyof RecoverAsk]: RecoverAsk[K] } = {};
  if (recover.room !== undefined) {
    const id = _isObject(recover.room) ? recover.room.id : undefined;
    if (typeof id !== "string" || id.length > MAX_ID_LENGTH) {
      throw new TypeError(
        `Recover room.id must be a string of at most ${MAX_ID_LENGTH} characters`,
      );
    }
    ask.room = { id, ..._position("room", recover.room) };
  }
  if (recover.mid !== undefined) ask.mid = _position("mid", recover.mid);
  if (recover.all !== undefined) ask.all = _position("all", recover.all);
  return ask;
}
