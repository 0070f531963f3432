/**
 * The values of the `comet` command's flags: how each kind is read
 * (durations, addresses, sizes, limits) and how a default is written in
 * `--help`, so that it reads back the same.
 *
 * @module
 */
import { DEFAULTS } from "./defaults.ts";
import type { ListenOptions } from "./transport/acceptor.ts";
import { hostPort } from "./host_port.ts";

const _UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration such as `250ms`, `5s`, `1.5m` or `8m` into milliseconds.
 *
 * @throws {RangeError} When the text is not a positive number with a unit.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./config.ts";
 * console.log(parseDuration("8m")); // 480000
 * ```
 */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  const ms = m ? Number(m[1]) * _UNITS[m[2]!]! : NaN;
  if (!(ms > 0) || !Number.isFinite(ms)) {
    throw new RangeError(`Duration must be a positive number with a unit (ms, s, m, h): ${text}`);
  }
  return ms;
}

/**
 * Parses a listen address: `host:port`, `:port` (all interfaces), `[::1]:port`,
 * or `off`.
 *
 * @throws {RangeError} When the text is not such an address.
 *
 * @example
 * ```ts
 * import { parseAddr } from "./config.ts";
 * console.log(parseAddr("127.0.0.1:3101")); // { hostname: "127.0.0.1", port: 3101 }
 * ```
 */
export function parseAddr(text: string): ListenOptions | false {
  if (text === "off") return false;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new RangeError(`Address must be host:port or off: ${text}`);
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** @internal A file path: not blank. */
export function readPath(text: string): string {
  if (text.trim() === "") throw new RangeError("Must be a file path");
  return text;
}

/** @internal An integer of at least `min`. */
export function readInt(text: string, min: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new RangeError(`Must be an integer of at least ${min}: ${text}`);
  }
  return n;
}

/** @internal A limit: a positive integer, or 0 for none (`Infinity`). */
export function readLimit(text: string): number {
  const n = readInt(text, 0);
  return n === 0 ? Infinity : n;
}

/**
 * @internal A worker count: `auto`, or an integer of 1 to
 * {@linkcode DEFAULTS}`.maxWorkers`.
 */
export function readWorkers(text: string): number | "auto" {
  const word = text.trim();
  if (word === "auto") return "auto";
  const n = /^\d+$/.test(word) ? Number(word) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > DEFAULTS.maxWorkers) {
    throw new RangeError(`Must be auto or an integer of 1 to ${DEFAULTS.maxWorkers}: ${text}`);
  }
  return n;
}

/**
 * @internal Seconds as a bare number (`120`, `0.5`), or a duration with its
 * unit (`2m`); in milliseconds.
 */
export function readSeconds(text: string): number {
  let ms = NaN;
  try {
    ms = /^\s*\d+(?:\.\d+)?\s*$/.test(text) ? Number(text) * 1000 : parseDuration(text);
  } catch {
    // Said below, with both forms.
  }
  if (!(ms > 0 && Number.isFinite(ms))) {
    throw new RangeError(
      `Must be a positive number of seconds, or a duration with a unit (ms, s, m, h): ${text}`,
    );
  }
  return ms;
}

const _SIZES: Record<string, number> = { "": 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 };

/**
 * @internal A size in bytes: an integer with an optional binary unit (`512`, `64k`,
 * `32MiB`, `1g`); 0 for no cap.
 */
export function readSize(text: string): number {
  const m = /^(\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(text.trim());
  const n = m ? Number(m[1]) * _SIZES[(m[2] ?? "").toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new RangeError(`Must be a size in bytes such as 65536, 64KiB or 32MiB: ${text}`);
  }
  return n === 0 ? Infinity : n;
}

/** @internal A non-empty value on one line: it ends up in an HTTP header or a log line. */
export function readLine(text: string): string {
  if (text === "") throw new RangeError("Must not be empty");
  if (/[\r\n]/.test(text)) throw new RangeError("Must not contain line breaks");
  return text;
}

const _SIZE_UNITS = [[1 << 30, "GiB"], [1 << 20, "MiB"], [1 << 10, "KiB"]] as const;
const _TIME_UNITS = [[3_600_000, "h"], [60_000, "m"], [1_000, "s"]] as const;

/**
 * @internal A duration as the flags write it, in the largest unit that
 * keeps it whole: `8m`, `10s`, `250ms`. {@linkcode parseDuration} reads it
 * back.
 */
export function formatDuration(ms: number): string {
  for (const [size, unit] of _TIME_UNITS) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/**
 * @internal A size as the flags write it, in the largest binary unit that
 * keeps it whole: `256MiB`, `4096` stays `4KiB`. {@linkcode readSize}
 * reads it back.
 */
export function formatSize(bytes: number): string {
  for (const [size, unit] of _SIZE_UNITS) if (bytes % size === 0) return `${bytes / size}${unit}`;
  return String(bytes);
}

/** @internal A listen address as the flags write it: `127.0.0.1:3101`, `[::1]:3101`. */
export function formatAddr(addr: { readonly hostname: string; readonly port: number }): string {
  return hostPort(addr.hostname, addr.port);
}
