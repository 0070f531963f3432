/**
 * The client behind a trusted reverse proxy, from the headers of its
 * WebSocket upgrade: `X-Forwarded-For` (each proxy appends the address it
 * heard from), else `X-Real-IP`.
 *
 * @module
 */
import { parseIp, type TrustedProxies } from "../server/trusted_proxies.ts";
import type { PeerAddr } from "../server/wire.ts";

/**
 * Where a connection really comes from: `peer` itself unless it is a
 * trusted proxy; then the right-most address of `X-Forwarded-For` that is
 * not a trusted proxy too (those to its left were written by the client,
 * who may lie), or `X-Real-IP` without that header. A header that names
 * no valid address leaves `peer`: the per-IP limits then apply to the
 * proxy, as they would without `--trust-proxy`. The port of a forwarded
 * address is not known: 0.
 *
 * @example
 * ```ts
 * import { TrustedProxies } from "../server/trusted_proxies.ts";
 * import { forwardedClient } from "./forwarded_for.ts";
 *
 * const proxies = new TrustedProxies(["127.0.0.1"]);
 * const headers = new Headers({ "x-forwarded-for": "198.51.100.9, 203.0.113.7" });
 * const peer = { hostname: "127.0.0.1", port: 40000 };
 * console.log(forwardedClient(peer, headers, proxies)); // { hostname: "203.0.113.7", port: 0 }
 * ```
 */
export function forwardedClient(
  peer: PeerAddr,
  headers: Headers,
  proxies: TrustedProxies,
): PeerAddr {
  if (!proxies.trusts(peer.hostname)) return peer;
  const forwarded = headers.get("x-forwarded-for");
  if (forwarded !== null) {
    const hops = forwarded.split(",");
    let client: string | undefined;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = _address(hops[i]!);
      if (hop === undefined) break;
      client = hop;
      if (!proxies.trusts(hop)) break;
    }
    return client === undefined ? peer : { hostname: client, port: 0 };
  }
  const real = headers.get("x-real-ip");
  const address = real === null ? undefined : _address(real);
  return address === undefined ? peer : { hostname: address, port: 0 };
}

/** One hop's address without brackets or port, if it is an IP address at all. */
function _address(hop: string): string | undefined {
  let t = hop.trim();
  // "[2001:db8::1]:443" and "203.0.113.7:443": some proxies add the port.
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(t);
  if (bracket !== null) t = bracket[1]!;
  else if (/^[\d.]+:\d+$/.test(t)) t = t.slice(0, t.lastIndexOf(":"));
  return parseIp(t) === undefined ? undefined : t;
}
