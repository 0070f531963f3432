import type { Link, LinkOptions } from "./link.ts";
import { openTcpLink } from "./tcp_link.ts";
import { openWsLink } from "./ws_link.ts";

/**
 * Opens a link for any URL a Deno client can use: `tcp://` and `tls://`
 * through {@linkcode openTcpLink}, `ws://` and `wss://` through
 * {@linkcode openWsLink}. For `wss://` with `caCerts`, the WebSocket is made
 * with a Deno HTTP client that trusts them. Deno only; browsers use
 * {@linkcode openWsLink}.
 *
 * @throws {TypeError} When the URL's scheme is none of those.
 * @throws {ConnectionClosedError} When the connection cannot be made.
 *
 * @example
 * ```ts ignore
 * import { Client, openLink } from "../../mod.ts";
 *
 * const client = new Client("tcp://127.0.0.1:3101", { mid: 1, link: openLink });
 * await client.opened;
 * ```
 */
export async function openLink(url: URL, options: LinkOptions): Promise<Link> {
  switch (url.protocol) {
    case "tcp:":
    case "tls:":
      return await openTcpLink(url, options);
    case "ws:":
      return await openWsLink(url, options);
    case "wss:":
      return options.caCerts
        ? await _openWssTrusting(url, options, options.caCerts)
        : await openWsLink(url, options);
    default:
      throw new TypeError(`URL must be tcp://, tls://, ws:// or wss://: ${url.href}`);
  }
}

async function _openWssTrusting(url: URL, options: LinkOptions, caCerts: string[]): Promise<Link> {
  const client = Deno.createHttpClient({ caCerts });
  let link: Link;
  try {
    link = await openWsLink(url, options, (href) => new WebSocket(href, { client }));
  } catch (err) {
    client.close();
    throw err;
  }
  // The HTTP client is a resource of its own: it lives exactly as long as the socket.
  const closed = link.closed.then((reason) => {
    client.close();
    return reason;
  });
  return {
    send: (frame) => link.send(frame),
    get bufferedAmount() {
      return link.bufferedAmount;
    },
    close: (reason) => link.close(reason),
    closed,
  };
}
