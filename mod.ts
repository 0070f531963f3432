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
 * This module is the public API: running a server (`serve`), the handlers
 * for your own `Deno.serve`, the hub (`Comet`) and the `Push` contract it
 * takes, the `Operator` and `Connection` types auth plugs into, the
 * operators that ship (JWT, webhook), the cluster, the goim client, and the
 * errors callers catch. Internals stay importable by path, but are not a
 * promise.
 *
 * @module
 */
// The public API. Everything else (codecs, buffers, timers, wires) stays
// importable by path for tests and tools, but is not a promise.

// Running a server: listeners, the push API, shutdown.
export {
  type CometServer,
  serve,
  type ServeOptions,
  type ServerAddrs,
  type WsServeOptions,
} from "./src/serve.ts";
export type { ListenOptions, TlsCertificate } from "./src/transport/acceptor.ts";
export type { PkgHeaderSize, PkgListenOptions } from "./src/transport/pkg.ts";
// The defaults every entry reads.
export { type DefaultAddress, DEFAULTS, type Defaults } from "./src/defaults.ts";
// At the edge, or inside your own Deno.serve.
export { type CometHandler, type CometHandlerOptions, createCometHandler } from "./src/handler.ts";
export {
  type ApiHandler,
  type ApiOptions,
  createApiHandler,
  type NodesInfo,
} from "./src/api/push_api.ts";

// The hub and the pushes it takes.
export {
  type BacklogFigures,
  Comet,
  type CometLimits,
  type CometOptions,
  type CometStats,
  type ConnectionFigures,
  DEFAULT_LIMITS,
  type LimitHits,
  type PushAllOptions,
} from "./src/server/comet.ts";
export type { OnlineTotal, Push, PushTarget, RoomCount } from "./src/server/push.ts";
export {
  ALL_STREAM,
  type HistoryFigures,
  type HistoryLimits,
  midStream,
  type NotRecovered,
  roomStream,
  type StreamAnswer,
  type StreamEntry,
  type StreamHistory,
  type StreamQuery,
  type StreamStamp,
} from "./src/server/streams.ts";
export { MemoryHistory, type MemoryHistoryOptions } from "./src/server/memory_history.ts";
export type { CometObserver, SessionInfo } from "./src/server/comet_observer.ts";
export type { ChannelState, SlowPolicy } from "./src/server/channel.ts";
export type { Connection } from "./src/server/connection.ts";
export type { BacklogLimits } from "./src/server/backlog.ts";
// What a transport hands the hub: one connection's frames in, bytes out.
export type { ConnInfo, FrameReader, PeerAddr, Wire } from "./src/server/wire.ts";
export { BacklogFullError } from "./src/server/backlog_full_error.ts";

// Auth: the operator contract and the operators that ship.
export {
  type ConnectRequest,
  DefaultOperator,
  type Operator,
  parseGoimAuth,
  type ReplyBody,
  type Session,
} from "./src/server/operator.ts";
export { OperatorUnavailableError } from "./src/server/operator_unavailable_error.ts";
export {
  type ExpiringSession,
  JwtOperator,
  type JwtOperatorOptions,
} from "./src/auth/jwt_operator.ts";
export {
  type JwtAlgorithm,
  type JwtClaims,
  JwtError,
  type JwtErrorReason,
  JwtVerifier,
  type JwtVerifierOptions,
} from "./src/auth/jwt.ts";
export {
  type WebhookAuthScheme,
  WebhookOperator,
  type WebhookOperatorOptions,
} from "./src/auth/webhook_operator.ts";
export {
  WebhookError,
  type WebhookErrorReason,
  type WebhookFailure,
  WebhookUnavailableError,
  type WebhookUnavailableReason,
} from "./src/auth/webhook_error.ts";

// The wire contract's vocabulary.
export { Op, type OpName } from "./src/protocol/op.ts";
export type { Frame } from "./src/protocol/frame.ts";
export { ProtocolError } from "./src/protocol/protocol_error.ts";
export {
  decodeStreamPush,
  encodeStreamPush,
  StreamKind,
  type StreamKindCode,
  type StreamPush,
} from "./src/protocol/stream_push.ts";

// Clustering.
export type {
  Cluster,
  ClusterHealth,
  ClusterHub,
  ClusterNode,
  ClusterPushResult,
  ClusterState,
  Gathered,
  NodeAddress,
  WorkerGroup,
} from "./src/cluster/cluster.ts";
export { MemoryCluster, type MemoryClusterOptions } from "./src/cluster/memory_cluster.ts";
export { BusCluster, type BusClusterOptions } from "./src/cluster/bus_cluster.ts";
export {
  type BusReceiver,
  type BusTransport,
  ChannelTransport,
} from "./src/cluster/bus_transport.ts";
export { PortMesh } from "./src/cluster/bus_port_mesh.ts";
export {
  RedisCluster,
  type RedisClusterOptions,
  type RedisClusterStats,
} from "./src/cluster/redis_cluster.ts";

// The goim client.
export { connect } from "./src/client/connect.ts";
export {
  Client,
  type ClientFrame,
  type ClientOptions,
  type ClientState,
  type ClientStats,
  type FrameHandler,
  type GoimAuth,
  type JsonMessage,
  type MessagesOptions,
  type RequestOptions,
  type RoomPosition,
  type StateChange,
  type StreamInfo,
  type StreamLost,
  type StreamLostReason,
  type StreamName,
  type StreamPosition,
  type StreamPositions,
} from "./src/client/client.ts";
export { MessageStream } from "./src/client/message_stream.ts";
export type { Link, LinkOpener, LinkOptions } from "./src/client/link.ts";
export { openLink } from "./src/client/open_link.ts";
export { openTcpLink } from "./src/client/tcp_link.ts";
export { openWsLink, type WebSocketFactory } from "./src/client/ws_link.ts";
export type { ReconnectOptions } from "./src/reconnect/backoff.ts";
export { AuthError } from "./src/client/auth_error.ts";
export { ConnectionClosedError } from "./src/client/connection_closed_error.ts";
export { RequestTimeoutError } from "./src/client/request_timeout_error.ts";

// Logging.
export {
  createLogger,
  type LogFields,
  type LogFormat,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  silentLogger,
} from "./src/log.ts";
