/** How much of a refused Origin the answer repeats. */
const _SHOWN = 128;

/**
 * Why `request`, a browser's cross-origin request that may change state, is
 * refused; `undefined` when it may go on. The push API and the admin page
 * answer it with 403 and this message.
 *
 * A web page on another site can make a browser send a form or a no-cors
 * `fetch` to the API without reading the answer: enough to push when the API
 * has no token. Every method but GET and HEAD is checked:
 *
 * - `Sec-Fetch-Site`, where sent, decides: `same-origin` and `none` (typed
 *   in or bookmarked) go on, anything else is refused. A browser sets it and
 *   no page can, and it holds behind a proxy that rewrites `Host`.
 * - Otherwise an `Origin` must be this server's: http or https with the
 *   request's `Host`. `Origin: null` (a sandboxed frame, a `file:` or `data:`
 *   page, a redirect from another site) is never this server.
 * - Neither header: not a browser (curl, goim's tools, another server); it
 *   goes on, and the token, where there is one, guards it.
 *
 * @param url The request's parsed target, whose host stands in for a missing `Host`.
 *
 * @example
 * ```ts
 * import { crossOriginRefusal } from "./origin.ts";
 * const url = new URL("http://127.0.0.1:3111/goim/push/all?operation=1000");
 * const post = (headers: Record<string, string>) =>
 *   crossOriginRefusal(new Request(url, { method: "POST", headers }), url);
 * console.log(post({ origin: "https://evil.example" })); // "Forbidden: cross-origin request: https://evil.example"
 * console.log(post({ origin: "http://127.0.0.1:3111" })); // undefined
 * console.log(post({})); // undefined: curl
 * ```
 */
export function crossOriginRefusal(request: Request, url: URL): string | undefined {
  if (request.method === "GET" || request.method === "HEAD") return undefined;
  const origin = request.headers.get("origin");
  const site = request.headers.get("sec-fetch-site");
  if (site !== null) {
    if (site === "same-origin" || site === "none") return undefined;
    return _refusal(origin ?? `Sec-Fetch-Site ${site}`);
  }
  if (origin === null) return undefined;
  if (_isOwn(origin, request.headers.get("host") ?? url.host)) return undefined;
  return _refusal(origin);
}

function _refusal(detail: string): string {
  const shown = detail.length > _SHOWN ? `${detail.slice(0, _SHOWN)}...` : detail;
  return `Forbidden: cross-origin request: ${shown}`;
}

/**
 * Whether `origin` names `host`. The scheme is not compared: behind a proxy
 * that ends TLS the page is https while the request arrives over http, and
 * another scheme on the same host and port is this server anyway.
 */
function _isOwn(origin: string, host: string): boolean {
  let from: URL;
  try {
    from = new URL(origin);
  } catch {
    return false; // "null", or not an origin at all
  }
  if (from.protocol !== "http:" && from.protocol !== "https:") return false;
  try {
    // Parsed the same way, so case, default ports and IDNA cannot tell them apart.
    return new URL(`${from.protocol}//${host}`).host === from.host;
  } catch {
    return false;
  }
}
