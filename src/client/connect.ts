import { Client, type ClientOptions } from "./client.ts";
import { openLink } from "./open_link.ts";

/**
 * Connects a {@linkcode Client} and resolves once it is authenticated and
 * ready. Deno's entry point: `tcp://host:port`, `tls://host:port`,
 * `ws://host:port/sub` and `wss://...` all work (a `link` option overrides
 * that). In a browser, use `new Client(url, options)` and
 * {@linkcode Client.opened} from `src/client/mod_browser.ts` instead.
 *
 * Handlers added after it resolves miss what arrives with the connection: a
 * push sent the moment the server lists the client online, and, with
 * `positions`, the replay of what the client missed. To take those, make the
 * client with `new Client(url, { ...options, link: openLink })`, add its
 * handlers, then await {@linkcode Client.opened}.
 *
 * @param url Where the server listens, e.g. `tcp://127.0.0.1:3101`.
 * @param options Auth, timings, reconnection; see {@linkcode ClientOptions}.
 * @returns The open client; close it with `close()` or `await using`.
 * @throws {AuthError} When the server refuses the auth.
 * @throws {ConnectionClosedError} When the connection cannot be made.
 * @throws {RequestTimeoutError} When connecting takes longer than `connectTimeout`.
 * @throws {TypeError} When the URL or the auth is unusable.
 *
 * @example
 * ```ts ignore
 * import { connect } from "../../mod.ts";
 *
 * await using client = await connect("tcp://127.0.0.1:3101", {
 *   mid: 42,
 *   roomId: "live://1000",
 *   accepts: [1000],
 * });
 * for await (const push of client.messages()) {
 *   console.log(push.op, new TextDecoder().decode(push.body));
 * }
 * ```
 */
export async function connect(url: string | URL, options: ClientOptions = {}): Promise<Client> {
  const client = new Client(url, { ...options, link: options.link ?? openLink });
  try {
    await client.opened;
  } catch (err) {
    await client.close();
    throw err;
  }
  return client;
}
