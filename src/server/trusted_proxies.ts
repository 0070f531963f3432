/**
 * The reverse proxies in front of the server (`--trust-proxy`): a
 * connection from one of them carries its client's address in a header,
 * and the per-IP limits apply to that address instead of the proxy's.
 *
 * @module
 */

interface _Range {
  /** The address as four 32-bit words (IPv4 in the last, as `::ffff:a.b.c.d`). */
  words: number[];
  /** Leading bits that must match, 0 to 128. */
  bits: number;
}

const _V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const _HEX = /^[0-9a-f]{1,4}$/i;

function _v4(text: string): number | undefined {
  const m = _V4.exec(text);
  if (m === null) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    if (part > 255 || (m[i]!.length > 1 && m[i]![0] === "0")) return undefined;
    n = n * 256 + part;
  }
  return n;
}

/** IPv6 text (with `::` and a trailing IPv4 part allowed) as eight 16-bit groups. */
function _v6(text: string): number[] | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  // An IPv4 part may end the address only: "1.2.3.4::" is no address.
  const groups = (half: string, last: boolean): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (last && i === parts.length - 1 && part.includes(".")) {
        const v4 = _v4(part);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (_HEX.test(part)) out.push(parseInt(part, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1]!, true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/**
 * `text` as an IP address, IPv4 or IPv6 (brackets and a zone allowed), in
 * four 32-bit words; an IPv4 address and its IPv6-mapped form give the same.
 * `undefined` when it is not one.
 *
 * @example
 * ```ts
 * import { parseIp } from "./trusted_proxies.ts";
 * console.log(parseIp("10.0.0.1"), parseIp("::ffff:10.0.0.1"), parseIp("proxy")); // equal twice, then undefined
 * ```
 */
export function parseIp(text: string): number[] | undefined {
  const t = _bare(text);
  const v4 = _v4(t);
  if (v4 !== undefined) return [0, 0, 0xffff, v4];
  const g = _v6(t);
  if (g === undefined) return undefined;
  return [
    (g[0]! << 16 | g[1]!) >>> 0,
    (g[2]! << 16 | g[3]!) >>> 0,
    (g[4]! << 16 | g[5]!) >>> 0,
    (g[6]! << 16 | g[7]!) >>> 0,
  ];
}

/** `text` without surrounding space, brackets or a zone: the address parseIp reads. */
function _bare(text: string): string {
  let t = text.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  const zone = t.indexOf("%");
  return zone < 0 ? t : t.slice(0, zone);
}

function _range(text: string): _Range {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const words = parseIp(address);
  // The family as parseIp read it: "[10.0.0.0]/8" taken as 8 of 128 bits would trust all IPv4.
  const v4 = _v4(_bare(address)) !== undefined;
  const max = v4 ? 32 : 128;
  const prefix = text.slice(slash + 1);
  const bits = slash < 0 ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (words === undefined || !(bits >= 0 && bits <= max)) {
    throw new RangeError(`Trusted proxy must be an IP address or a CIDR range: ${text}`);
  }
  return { words, bits: v4 ? bits + 96 : bits };
}

function _within(words: number[], range: _Range): boolean {
  let left = range.bits;
  for (let i = 0; i < 4 && left > 0; i++, left -= 32) {
    const mask = left >= 32 ? 0xffffffff : (0xffffffff << (32 - left)) >>> 0;
    if (((words[i]! & mask) >>> 0) !== ((range.words[i]! & mask) >>> 0)) return false;
  }
  return true;
}

/**
 * A list of proxy addresses and CIDR ranges, IPv4 and IPv6.
 *
 * @example
 * ```ts
 * import { TrustedProxies } from "./trusted_proxies.ts";
 *
 * const proxies = new TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8"]);
 * console.log(proxies.trusts("10.1.2.3"), proxies.trusts("203.0.113.7")); // true false
 * ```
 */
export class TrustedProxies {
  #ranges: _Range[];

  /**
   * @throws {RangeError} When an entry is neither an IP address nor a CIDR
   * range.
   */
  constructor(list: readonly string[] = []) {
    this.#ranges = list.map(_range);
  }

  /** Whether no proxy is trusted. */
  get empty(): boolean {
    return this.#ranges.length === 0;
  }

  /** Whether `ip` (text, as a socket reports it) is one of the proxies. */
  trusts(ip: string): boolean {
    if (this.#ranges.length === 0) return false;
    const words = parseIp(ip);
    if (words === undefined) return false;
    for (const range of this.#ranges) if (_within(words, range)) return true;
    return false;
  }
}
