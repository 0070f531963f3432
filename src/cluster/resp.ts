/**
 * RESP2, the protocol Redis speaks: an encoder for commands and a streaming
 * parser for replies. Commands go out as arrays of bulk strings; replies come
 * back as simple strings, errors, integers, bulk strings and arrays, split
 * across reads wherever the network likes.
 *
 * @module
 */
import { ProtocolError } from "../protocol/protocol_error.ts";

/**
 * One argument of a Redis command. Strings are sent as UTF-8, numbers and
 * bigints in decimal, bytes as they are.
 */
export type RedisArg = string | Uint8Array | number | bigint;

/**
 * A parsed reply: simple strings as `string`, integers as `number` (`bigint`
 * beyond 2^53), bulk strings as `Uint8Array` (see {@linkcode replyText}),
 * null bulk strings and null arrays as `null`, arrays as arrays. Error
 * replies are {@linkcode RedisError} values; a client rejects with those
 * at the top level, so they only show up inside arrays (e.g. from `EXEC`).
 */
export type RedisReply =
  | string
  | number
  | bigint
  | Uint8Array
  | null
  | RedisError
  | RedisReply[];

/**
 * An error reply from Redis (`-ERR ...`, `-WRONGTYPE ...`). The message is
 * the server's text; {@linkcode RedisError.code} is its first word. The
 * connection that got it is fine and stays open.
 *
 * @example
 * ```ts
 * import { RedisError } from "./resp.ts";
 * const err = new RedisError("WRONGTYPE Operation against a key holding the wrong kind of value");
 * console.log(err.code); // "WRONGTYPE"
 * ```
 */
export class RedisError extends Error {
  /** The first word of the message, by Redis convention its kind: `ERR`, `WRONGTYPE`, `NOAUTH`... */
  readonly code: string;

  /** Creates the error from the text of an error reply. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RedisError";
    const space = message.indexOf(" ");
    this.code = space === -1 ? message : message.slice(0, space);
  }
}

const _encoder = new TextEncoder();
const _decoder = new TextDecoder();

const _CR = 13;
const _LF = 10;
const _PLUS = 43;
const _MINUS = 45;
const _COLON = 58;
const _DOLLAR = 36;
const _STAR = 42;

function _argBytes(arg: RedisArg, index: number): Uint8Array {
  if (typeof arg === "string") return _encoder.encode(arg);
  if (arg instanceof Uint8Array) return arg;
  if (typeof arg === "number") {
    // String(Infinity) is not something Redis parses; "+inf" must be explicit.
    if (!Number.isFinite(arg)) throw new RangeError(`Argument ${index} must be finite: ${arg}`);
    return _encoder.encode(String(arg));
  }
  if (typeof arg === "bigint") return _encoder.encode(arg.toString());
  throw new TypeError(
    `Argument ${index} must be a string, Uint8Array, number or bigint: ${typeof arg}`,
  );
}

function _writeAscii(out: Uint8Array, pos: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[pos++] = text.charCodeAt(i);
  return pos;
}

/**
 * Encodes one command as a RESP array of bulk strings, ready to write.
 *
 * @param args The command name and its arguments, e.g. `["SET", "k", bytes]`.
 * @returns The bytes to send.
 * @throws {TypeError} When `args` is not an array or an argument has an unusable type.
 * @throws {RangeError} When `args` is empty or a number is not finite.
 *
 * @example
 * ```ts
 * import { encodeCommand } from "./resp.ts";
 * const bytes = encodeCommand(["SET", "greeting", "hi"]);
 * console.log(new TextDecoder().decode(bytes)); // "*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$2\r\nhi\r\n"
 * ```
 */
export function encodeCommand(args: readonly RedisArg[]): Uint8Array {
  if (!Array.isArray(args)) throw new TypeError(`Command must be an array: ${typeof args}`);
  if (args.length === 0) throw new RangeError("Command must have at least its name");
  const parts: Uint8Array[] = new Array(args.length);
  const head = `*${args.length}\r\n`;
  let size = head.length;
  for (let i = 0; i < args.length; i++) {
    const bytes = _argBytes(args[i]!, i);
    parts[i] = bytes;
    size += String(bytes.length).length + bytes.length + 5;
  }
  const out = new Uint8Array(size);
  let pos = _writeAscii(out, 0, head);
  for (const bytes of parts) {
    pos = _writeAscii(out, pos, `$${bytes.length}\r\n`);
    out.set(bytes, pos);
    pos += bytes.length;
    out[pos++] = _CR;
    out[pos++] = _LF;
  }
  return out;
}

/**
 * Reads a reply as text: bulk strings decoded as UTF-8, simple strings as
 * they are, integers in decimal, `null` for null replies.
 *
 * @param reply A reply from a command.
 * @returns The text, or `null` for a null reply.
 * @throws {TypeError} When the reply is an array or an error.
 *
 * @example
 * ```ts
 * import { replyText } from "./resp.ts";
 * console.log(replyText(new TextEncoder().encode("héllo"))); // "héllo"
 * console.log(replyText(null)); // null
 * ```
 */
export function replyText(reply: RedisReply): string | null {
  if (reply instanceof Uint8Array) return _decoder.decode(reply);
  if (typeof reply === "string") return reply;
  if (typeof reply === "number" || typeof reply === "bigint") return String(reply);
  if (reply === null) return null;
  throw new TypeError(`Reply is not text: ${Array.isArray(reply) ? "an array" : reply.name}`);
}

/** Limits for a {@linkcode RespParser}, in bytes. */
export interface RespParserOptions {
  /** Largest bulk string accepted. Default 512 MiB, Redis's own limit. */
  maxBulkLength?: number;
  /**
   * Longest line accepted: a simple string, an error, an integer or a
   * length header. Default 1 MiB.
   */
  maxLineLength?: number;
}

interface _Frame {
  items: RedisReply[];
  remaining: number;
}

function _limit(name: string, value: number | undefined, fallback: number): number {
  const limit = value ?? fallback;
  if (!(Number.isSafeInteger(limit) && limit >= 0)) {
    throw new RangeError(`${name} must be a non-negative integer: ${limit}`);
  }
  return limit;
}

function _latin1(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

/** A short, quoted excerpt of bad input for an error message. */
function _show(bytes: Uint8Array): string {
  const shown = JSON.stringify(_latin1(bytes.subarray(0, 32)));
  return bytes.length > 32 ? `${shown}...` : shown;
}

/** An integer line body, or undefined when it is not one. */
function _integer(body: Uint8Array): number | bigint | undefined {
  const negative = body[0] === _MINUS;
  const start = negative ? 1 : 0;
  const digits = body.length - start;
  // 19 digits hold every 64-bit integer; more is not something Redis sends.
  if (digits === 0 || digits > 19) return undefined;
  let value = 0;
  for (let i = start; i < body.length; i++) {
    const digit = body[i]! - 48;
    if (digit < 0 || digit > 9) return undefined;
    value = value * 10 + digit;
  }
  if (value <= Number.MAX_SAFE_INTEGER) return negative && value !== 0 ? -value : value;
  return BigInt(_latin1(body));
}

/**
 * Parses a stream of RESP2 replies fed in chunks of any size. Bytes are
 * copied out of each chunk, so the caller may reuse its read buffer.
 * Malformed input throws {@linkcode ProtocolError}, and so does every call
 * after it: the stream cannot be trusted past that point.
 *
 * @example
 * ```ts
 * import { RespParser } from "./resp.ts";
 * const parser = new RespParser();
 * const bytes = new TextEncoder().encode("+OK\r\n:42\r\n$5\r\nhel");
 * console.log([...parser.parse(bytes)]); // ["OK", 42]
 * console.log([...parser.parse(new TextEncoder().encode("lo\r\n"))]); // [Uint8Array(5)]
 * ```
 */
export class RespParser {
  #maxBulkLength: number;
  #maxLineLength: number;
  #lineParts: Uint8Array[] = [];
  #lineLength = 0;
  #bulk: Uint8Array | undefined;
  #bulkFilled = 0;
  #bulkTail = 0;
  #stack: _Frame[] = [];
  #rest: Uint8Array | undefined;
  #error: ProtocolError | undefined;

  /**
   * Creates a parser at the start of a stream.
   *
   * @throws {RangeError} When a limit is not a non-negative integer.
   */
  constructor(options: RespParserOptions = {}) {
    this.#maxBulkLength = _limit("Max bulk length", options.maxBulkLength, 512 * 1024 * 1024);
    this.#maxLineLength = _limit("Max line length", options.maxLineLength, 1024 * 1024);
  }

  /** Whether part of a reply has been received and the rest is still due. */
  get partial(): boolean {
    return this.#stack.length > 0 || this.#bulk !== undefined || this.#lineLength > 0 ||
      this.#rest !== undefined;
  }

  /**
   * Feeds the next chunk of the stream and yields every reply it completes,
   * in order. Stopping the iteration early loses nothing: the unread bytes
   * are kept for the next call.
   *
   * @param chunk The next bytes read from the connection; may be empty.
   * @throws {ProtocolError} When the stream is malformed or over a limit.
   * @throws {TypeError} When `chunk` is not a Uint8Array.
   */
  *parse(chunk: Uint8Array): Generator<RedisReply, void, undefined> {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(`Chunk must be a Uint8Array: ${typeof chunk}`);
    }
    if (this.#error) throw this.#error;
    if (this.#rest !== undefined) {
      const rest = this.#rest;
      this.#rest = undefined;
      const joined = new Uint8Array(rest.length + chunk.length);
      joined.set(rest);
      joined.set(chunk, rest.length);
      chunk = joined;
    }
    const end = chunk.length;
    let pos = 0;
    try {
      while (pos < end) {
        let value: RedisReply;
        const bulk = this.#bulk;
        if (bulk !== undefined) {
          if (this.#bulkFilled < bulk.length) {
            const take = Math.min(bulk.length - this.#bulkFilled, end - pos);
            bulk.set(chunk.subarray(pos, pos + take), this.#bulkFilled);
            this.#bulkFilled += take;
            pos += take;
          }
          while (this.#bulkTail < 2 && pos < end) {
            if (chunk[pos] !== (this.#bulkTail === 0 ? _CR : _LF)) {
              throw this.#fail(`Bulk string of ${bulk.length} bytes is not followed by CRLF`);
            }
            this.#bulkTail++;
            pos++;
          }
          if (this.#bulkTail < 2) break;
          this.#bulk = undefined;
          value = bulk;
        } else {
          const lf = chunk.indexOf(_LF, pos);
          if (lf === -1) {
            this.#keepLine(chunk.subarray(pos));
            pos = end;
            break;
          }
          const line = this.#takeLine(chunk.subarray(pos, lf));
          pos = lf + 1;
          if (line.length < 2 || line[line.length - 1] !== _CR) {
            throw this.#fail("Reply line does not end in CRLF");
          }
          const body = line.subarray(1, line.length - 1);
          switch (line[0]) {
            case _PLUS:
              value = _decoder.decode(body);
              break;
            case _MINUS:
              value = new RedisError(_decoder.decode(body));
              break;
            case _COLON: {
              const integer = _integer(body);
              if (integer === undefined) {
                throw this.#fail(`Integer reply is not an integer: ${_show(body)}`);
              }
              value = integer;
              break;
            }
            case _DOLLAR: {
              const length = this.#length("Bulk string", body);
              if (length === -1) {
                value = null;
                break;
              }
              if (length > this.#maxBulkLength) {
                throw this.#fail(
                  `Bulk string is longer than ${this.#maxBulkLength} bytes: ${length}`,
                );
              }
              this.#bulk = new Uint8Array(length);
              this.#bulkFilled = 0;
              this.#bulkTail = 0;
              continue;
            }
            case _STAR: {
              const length = this.#length("Array", body);
              if (length === -1) {
                value = null;
                break;
              }
              if (length === 0) {
                value = [];
                break;
              }
              this.#stack.push({ items: [], remaining: length });
              continue;
            }
            default:
              throw this.#fail(
                `Unknown reply type: ${JSON.stringify(String.fromCharCode(line[0]!))}`,
              );
          }
        }
        // A finished value completes its array, which may complete the one around it.
        for (;;) {
          const frame = this.#stack.at(-1);
          if (frame === undefined) {
            yield value;
            break;
          }
          frame.items.push(value);
          if (--frame.remaining > 0) break;
          this.#stack.pop();
          value = frame.items;
        }
      }
    } finally {
      if (this.#error === undefined && pos < end) this.#rest = chunk.slice(pos);
    }
  }

  #keepLine(piece: Uint8Array): void {
    this.#lineLength += piece.length;
    // Type byte and CR come on top of the line's own limit.
    if (this.#lineLength > this.#maxLineLength + 2) {
      throw this.#fail(`Reply line is longer than ${this.#maxLineLength} bytes`);
    }
    if (piece.length > 0) this.#lineParts.push(piece.slice());
  }

  /** The whole line ending in `piece`, joined with what earlier chunks left. */
  #takeLine(piece: Uint8Array): Uint8Array {
    if (this.#lineLength === 0) {
      if (piece.length > this.#maxLineLength + 2) {
        throw this.#fail(`Reply line is longer than ${this.#maxLineLength} bytes`);
      }
      return piece;
    }
    this.#keepLine(piece);
    const line = new Uint8Array(this.#lineLength);
    let offset = 0;
    for (const part of this.#lineParts) {
      line.set(part, offset);
      offset += part.length;
    }
    this.#lineParts = [];
    this.#lineLength = 0;
    return line;
  }

  #length(what: string, body: Uint8Array): number {
    const length = _integer(body);
    if (typeof length !== "number" || length < -1) {
      throw this.#fail(`${what} length is not valid: ${_show(body)}`);
    }
    return length;
  }

  #fail(message: string): ProtocolError {
    this.#error = new ProtocolError(message);
    this.#bulk = undefined;
    this.#stack = [];
    this.#lineParts = [];
    this.#lineLength = 0;
    return this.#error;
  }
}
