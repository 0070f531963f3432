/**
 * Whether a listen address is reachable from this host only. The CLI uses it
 * to refuse open auth (goim's trust-the-client default) and an API without a
 * token on an address other machines can reach.
 *
 * @module
 */

/** Parses a strict dotted quad: four decimal octets, no leading zeros. */
function _ipv4(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    // "0127" is octal to inet_aton and "127.1" shorthand to getaddrinfo: a name
    // that resolves differently elsewhere is not one to vouch for.
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

/** Parses an IPv6 literal into its eight 16-bit groups; null when it is not one. */
function _ipv6(text: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = _ipv4(p);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  // An embedded IPv4 address may only end the literal.
  if (halves.length === 2 && halves[0]!.includes(".")) return null;
  if (halves.length === 1) return head.length === 8 ? head : null;
  const missing = 8 - head.length - tail.length;
  if (missing < 1) return null;
  return [...head, ...new Array<number>(missing).fill(0), ...tail];
}

/**
 * True when `hostname` names this host's loopback interface only:
 * `localhost`, an IPv4 address in 127.0.0.0/8 or the IPv6 address `::1`
 * (bracketed or not, in any spelling). Everything else is false, erring on
 * the side of "reachable": the unspecified addresses `0.0.0.0` and `::`
 * (every interface), IPv4-mapped `::ffff:127.0.0.1`, zone ids (`::1%lo`),
 * other host names, shorthand or octal IPv4 forms and the empty string.
 *
 * @example
 * ```ts
 * import { isLoopback } from "./open_guard.ts";
 * console.log(isLoopback("127.0.0.1")); // true
 * console.log(isLoopback("[::1]")); // true
 * console.log(isLoopback("0.0.0.0")); // false
 * ```
 */
export function isLoopback(hostname: string): boolean {
  if (typeof hostname !== "string") return false;
  if (hostname.startsWith("[") && hostname.endsWith("]")) {
    // Brackets are for IPv6 literals only, as in URLs.
    return _isLoopback6(_ipv6(hostname.slice(1, -1)));
  }
  if (hostname.toLowerCase() === "localhost") return true;
  const v4 = _ipv4(hostname);
  if (v4) return v4[0] === 127;
  return _isLoopback6(_ipv6(hostname));
}

function _isLoopback6(groups: number[] | null): boolean {
  if (!groups) return false;
  for (let i = 0; i < 7; i++) if (groups[i] !== 0) return false;
  return groups[7] === 1;
}
