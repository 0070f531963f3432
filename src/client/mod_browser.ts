/**
 * The goim client for browsers (and any runtime with a standard
 * `WebSocket`): everything of the client except the TCP and TLS links, so
 * that a bundle of this module has no Deno APIs in it.
 *
 * ```ts ignore
 * import { Client } from "./mod_browser.ts";
 *
 * const client = new Client("ws://127.0.0.1:3102/sub", { mid: 1, roomId: "live://1" });
 * await client.opened;
 * for await (const push of client.messages()) console.log(push.op, push.body);
 * ```
 *
 * @module
 */
export * from "../protocol/op.ts";
export * from "../protocol/frame.ts";
export * from "../protocol/protocol_error.ts";
export * from "./auth_error.ts";
export * from "./connection_closed_error.ts";
export * from "./request_timeout_error.ts";
export * from "../reconnect/backoff.ts";
export * from "./link.ts";
export * from "./read_frames.ts";
export * from "./message_stream.ts";
export * from "./ws_link.ts";
export * from "./client.ts";
