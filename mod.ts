/**
 * Comet: a long-connection push server for Deno, compatible with goim v2
 * clients. Application backends push to one connection (key), every device
 * of a user (mid), a room, or everyone; clients speak goim's binary protocol.
 *
 * Start a server with your own auth in a few lines:
 *
 * ```ts ignore
 * import { serve } from "./mod.ts";
 *
 * await using server = serve({
 *   tcp: { hostname: "127.0.0.1", port: 3101 },
 *   api: { hostname: "127.0.0.1", port: 3111 },
 *   operator: {
 *     connect({ body }) {
 *       const { token } = JSON.parse(new TextDecoder().decode(body));
 *       if (token !== "let-me-in") throw new Error("Bad token");
 *       return { mid: 42, room: "live://1000", accepts: [1000] };
 *     },
 *   },
 * });
 * await server.finished;
 * ```
 *
 * @module
 */
export * from "./src/protocol/op.ts";
export * from "./src/protocol/frame.ts";
export * from "./src/protocol/decoder.ts";
export * from "./src/protocol/protocol_error.ts";
export * from "./src/server/timer_heap.ts";
export * from "./src/server/queue.ts";
export * from "./src/server/wire.ts";
export * from "./src/server/operator.ts";
export * from "./src/server/operator_unavailable_error.ts";
export * from "./src/server/backlog.ts";
export * from "./src/server/backlog_full_error.ts";
export * from "./src/server/frame_queue.ts";
export * from "./src/server/channel.ts";
export * from "./src/server/write_scheduler.ts";
export * from "./src/server/room.ts";
export * from "./src/server/bucket.ts";
export * from "./src/server/comet.ts";
export * from "./src/server/comet_observer.ts";
export * from "./src/transport/batch_cache.ts";
export * from "./src/transport/buffer_pool.ts";
export * from "./src/transport/stream_wire.ts";
export * from "./src/transport/acceptor.ts";
export * from "./src/transport/tcp.ts";
export * from "./src/transport/websocket_codec.ts";
export * from "./src/transport/ws_handshake.ts";
export * from "./src/transport/ws_batch.ts";
export * from "./src/transport/websocket.ts";
export * from "./src/transport/pkg.ts";
export * from "./src/transport/socket_wire.ts";
export * from "./src/transport/traffic.ts";
export * from "./src/transport/accept_errors.ts";
export * from "./src/transport/fd_limit.ts";
export * from "./src/api/http_server.ts";
export * from "./src/api/push_api.ts";
export * from "./src/api/metrics.ts";
export * from "./src/auth/jwt.ts";
export * from "./src/auth/jwt_operator.ts";
export * from "./src/auth/webhook_operator.ts";
export * from "./src/auth/open_guard.ts";
export * from "./src/log.ts";
export * from "./src/defaults.ts";
export * from "./src/config.ts";
export * from "./src/serve.ts";
export * from "./src/cluster/resp.ts";
export * from "./src/cluster/redis_client.ts";
export * from "./src/cluster/cluster.ts";
export * from "./src/cluster/memory_cluster.ts";
export * from "./src/cluster/redis_cluster.ts";
export * from "./src/handler.ts";
export * from "./src/client/auth_error.ts";
export * from "./src/client/connection_closed_error.ts";
export * from "./src/client/request_timeout_error.ts";
export * from "./src/reconnect/backoff.ts";
export * from "./src/client/link.ts";
export * from "./src/client/read_frames.ts";
export * from "./src/client/message_stream.ts";
export * from "./src/client/ws_link.ts";
export * from "./src/client/tcp_link.ts";
export * from "./src/client/open_link.ts";
export * from "./src/client/client.ts";
export * from "./src/client/connect.ts";
