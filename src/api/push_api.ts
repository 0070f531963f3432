import type { Cluster, ClusterPushResult } from "../cluster/cluster.ts";
import { MemoryCluster } from "../cluster/memory_cluster.ts";
import { isReservedOp, RESERVED_OPS } from "../protocol/op.ts";
import { DEFAULTS } from "../defaults.ts";
import { BacklogFullError } from "../server/backlog_full_error.ts";
import type { Comet } from "../server/comet.ts";
import { type AdminPushKind, createAdminHandler } from "./admin.ts";
import { formatMetrics } from "./metrics.ts";
import { crossOriginRefusal } from "./origin.ts";
import { hasBearer } from "./token.ts";
import { answerMetrics, gatherMetrics } from "./worker_metrics.ts";

/**
 * The nodes a client may connect to, as `/goim/nodes/weighted` reports them.
 *
 * @example
 * ```ts
 * import type { NodesInfo } from "./push_api.ts";
 *
 * const nodes: NodesInfo = {
 *   domain: "comet.example.com", tcpPort: 3101, wsPort: 3102, wssPort: 3103,
 *   heartbeat: 240, heartbeatMax: 2,
 *   addrs: ["203.0.113.7:3101"], domains: ["comet.example.com"],
 * };
 * ```
 */
export interface NodesInfo {
  /** Domain clients use for WebSocket, e.g. `comet.example.com`. */
  domain: string;
  /** TCP port, or 0 when not served. */
  tcpPort: number;
  /** WebSocket port, or 0 when not served. */
  wsPort: number;
  /** Secure WebSocket port, or 0 when not served. */
  wssPort: number;
  /** Client heartbeat interval in seconds. */
  heartbeat: number;
  /** Heartbeats a client may miss before the server closes it. */
  heartbeatMax: number;
  /** Node addresses (`host:port`) for native clients. */
  addrs: string[];
  /** Node domains for web clients. */
  domains: string[];
}

/**
 * Options for {@linkcode createApiHandler}.
 *
 * @example
 * ```ts
 * import type { ApiOptions } from "./push_api.ts";
 *
 * const options: ApiOptions = { token: "a long random secret", maxBody: 64 * 1024, admin: false };
 * ```
 */
export interface ApiOptions {
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest push body accepted, in bytes. Default {@linkcode DEFAULTS}`.maxPushBody`. */
  maxBody?: number;
  /** What `/goim/nodes/weighted` reports. */
  nodes?: () => NodesInfo;
  /**
   * The cluster pushes and online figures go through, attached to the same
   * hub; it also backs `/goim/nodes/instances`. Default: the hub alone
   * (no `/goim/nodes/instances`).
   */
  cluster?: Cluster;
  /**
   * Aborting it (at shutdown) fails pushes still reading their body with 503,
   * so a client that stalls mid-upload cannot hold the HTTP server open. It
   * also bounds the admin page's sampler: without it, `/admin/history` is empty.
   */
  signal?: AbortSignal;
  /**
   * Serve the admin page under `/admin` (live figures and a push form,
   * behind the same token). Default true.
   */
  admin?: boolean;
}

/** The goim response envelope. */
export interface ApiEnvelope {
  /**
   * 0 when ok; -400 bad request; -401 unauthorized; -403 a browser's
   * cross-origin request; -404 not found; -429 the server's backlog is full
   * (retry after `Retry-After` seconds); -500 server error; -503 shutting down.
   */
  code: number;
  /** Empty when ok, else what went wrong. */
  message: string;
  /** The result, or null. */
  data: unknown;
}

/**
 * An HTTP request handler, as `Deno.serve` takes.
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import { type ApiHandler, createApiHandler } from "./push_api.ts";
 *
 * await using comet = new Comet();
 * const api: ApiHandler = createApiHandler(comet);
 * const response = await api(new Request("http://localhost/goim/online/total"));
 * console.log((await response.json()).data); // { ip_count: 0, conn_count: 0 }
 * ```
 */
export type ApiHandler = (request: Request) => Promise<Response>;

class _BadRequest extends Error {
  status: number;
  code: number;
  constructor(message: string, status = 400, code = -400) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function _stopping(): _BadRequest {
  return new _BadRequest("Shutting down", 503, -503);
}

function _reply(status: number, code: number, message: string, data: unknown = null): Response {
  const body: ApiEnvelope = { code, message, data };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

function _ok(data: unknown = null): Response {
  return _reply(200, 0, "", data);
}

/**
 * A push's answer. One that could reach only this node's connections (the
 * broker is away) still succeeds: the message did go out here, and a retry
 * would deliver it twice to those who got it. The message says so.
 */
function _pushed(result: ClusterPushResult): Response {
  return result.degraded
    ? _reply(200, 0, "Cluster degraded: delivered to this node's connections only")
    : _ok();
}

function _required(params: URLSearchParams, name: string): string {
  const v = params.get(name);
  if (v === null || v === "") throw new _BadRequest(`Missing parameter: ${name}`);
  return v;
}

function _int(name: string, text: string, min: number, max: number): number {
  const n = /^-?\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new _BadRequest(`Invalid parameter ${name}: ${text.slice(0, 64)}`);
  }
  return n;
}

/**
 * A push's op: a 32-bit integer outside the protocol's own ops, which every
 * client and transport would take for protocol traffic (see
 * {@linkcode RESERVED_OPS}).
 */
function _operation(params: URLSearchParams): number {
  const op = _int("operation", _required(params, "operation"), -0x80000000, 0x7fffffff);
  if (isReservedOp(op)) {
    const { min, max } = RESERVED_OPS;
    throw new _BadRequest(
      `Invalid parameter operation: ${op} is reserved by the protocol (${min} to ${max})`,
    );
  }
  return op;
}

function _list(params: URLSearchParams, name: string): string[] {
  // goim clients repeat the parameter; a comma-separated value is accepted too.
  // A value listed twice counts once, so a push reaches each target once.
  const out = new Set(params.getAll(name).flatMap((v) => v.split(",")).filter((v) => v !== ""));
  if (out.size === 0) throw new _BadRequest(`Missing parameter: ${name}`);
  return [...out];
}

async function _body(request: Request, limit: number, signal?: AbortSignal): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limit) throw new _BadRequest(`Body exceeds ${limit} bytes: ${declared}`, 413);
  if (signal?.aborted) throw _stopping();
  if (!request.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  // Cancelling ends a pending read with `done`; the check after each read tells it from a real end.
  const abort = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", abort, { once: true });
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch {
        // The client went away mid-upload: its fault, not a server error.
        throw new _BadRequest("Could not read the request body");
      }
      if (signal?.aborted) throw _stopping();
      const { done, value } = chunk;
      if (done) break;
      size += value.length;
      if (size > limit) {
        await reader.cancel();
        throw new _BadRequest(`Body exceeds ${limit} bytes`, 413);
      }
      parts.push(value);
    }
  } finally {
    signal?.removeEventListener("abort", abort);
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The request's path and query. Only the request target matters: a Host header
 * the URL parser refuses (`Host: a b`) is the client's error, not the server's.
 */
function _target(request: Request): URL {
  try {
    return new URL(request.url);
  } catch {
    const raw = request.url;
    const scheme = raw.indexOf("://");
    const path = scheme < 0 ? -1 : raw.indexOf("/", scheme + 3);
    try {
      return new URL(path < 0 ? "/" : raw.slice(path), "http://localhost");
    } catch {
      throw new _BadRequest("Invalid request target");
    }
  }
}

/**
 * The goim "logic" HTTP API over a {@linkcode Comet} hub, or the
 * {@linkcode Cluster} it is a node of: pushes to keys, users, rooms and
 * everyone; online figures; node lists (`/goim/nodes/weighted`,
 * `/goim/nodes/instances`); `/healthz` (alive) and `/readyz` (ready for new
 * clients); `/metrics` in the Prometheus text format (see
 * {@linkcode formatMetrics}); and the admin page under `/admin`. Every
 * response but `/metrics` and the admin page's assets is goim's
 * `{code, message, data}` envelope.
 *
 * A push's `operation` may not be one of the protocol's own (0 to 18: 400).
 * A browser's request from another origin is refused with 403 on every
 * method but GET and HEAD, token or not, so that a web page cannot push
 * through a visitor's browser; requests without `Origin` and
 * `Sec-Fetch-Site` (curl, goim's tools, other servers) are not browsers'.
 *
 * @example
 * ```ts ignore
 * import { Comet } from "../server/comet.ts";
 * import { createApiHandler } from "./push_api.ts";
 *
 * const comet = new Comet();
 * Deno.serve({ port: 3111 }, createApiHandler(comet, { token: "secret" }));
 * ```
 */
export function createApiHandler(comet: Comet, options: ApiOptions = {}): ApiHandler {
  const cluster = options.cluster ?? _alone(comet);
  // A node of several workers: each answers for its own hub when one of them is scraped.
  answerMetrics(comet, { cluster });
  const token = options.token;
  const maxBody = options.maxBody ?? DEFAULTS.maxPushBody;
  const signal = options.signal;
  const routes: Record<string, [string, (p: URLSearchParams, r: Request) => Promise<Response>]> = {
    "/goim/push/keys": ["POST", async (p, r) => {
      const op = _operation(p);
      const keys = _list(p, "keys");
      return _pushed(await cluster.pushKeys(keys, op, await _body(r, maxBody, signal)));
    }],
    "/goim/push/mids": ["POST", async (p, r) => {
      const op = _operation(p);
      // "7" and "07" are one user: dedupe the numbers, not just the strings.
      const mids = new Set(
        _list(p, "mids").map((m) => _int("mids", m, 0, Number.MAX_SAFE_INTEGER)),
      );
      return _pushed(await cluster.pushMids([...mids], op, await _body(r, maxBody, signal)));
    }],
    "/goim/push/room": ["POST", async (p, r) => {
      const op = _operation(p);
      const room = `${_required(p, "type")}://${_required(p, "room")}`;
      return _pushed(await cluster.pushRoom(room, op, await _body(r, maxBody, signal)));
    }],
    "/goim/push/all": ["POST", async (p, r) => {
      const op = _operation(p);
      const speed = p.get("speed") ? _int("speed", p.get("speed")!, 0, 0x7fffffff) : 0;
      return _pushed(await cluster.pushAll(op, await _body(r, maxBody, signal), { speed }));
    }],
    "/goim/online/top": ["GET", (p) => {
      const type = _required(p, "type");
      const limit = _int("limit", _required(p, "limit"), 0, 0x7fffffff);
      const prefix = `${type}://`;
      const top = cluster.topRooms(prefix, limit).map(({ room, count }) => ({
        room_id: room.slice(prefix.length),
        count,
      }));
      return Promise.resolve(_ok(top));
    }],
    "/goim/online/room": ["GET", (p) => {
      const type = _required(p, "type");
      // No prototype: a room named like an Object.prototype member is an ordinary key.
      const out: Record<string, number> = Object.create(null);
      for (const room of _list(p, "rooms")) out[room] = cluster.roomOnline(`${type}://${room}`);
      return Promise.resolve(_ok(out));
    }],
    "/goim/online/total": ["GET", () => {
      const { ipCount, connCount } = cluster.onlineTotal();
      return Promise.resolve(_ok({ ip_count: ipCount, conn_count: connCount }));
    }],
    "/goim/nodes/weighted": ["GET", (p) => {
      const n = options.nodes?.();
      if (!n) return Promise.resolve(_reply(404, -404, "Node list is not configured"));
      return Promise.resolve(_ok({
        domain: n.domain,
        tcp_port: n.tcpPort,
        ws_port: n.wsPort,
        wss_port: n.wssPort,
        heartbeat: n.heartbeat,
        heartbeat_max: n.heartbeatMax,
        nodes: p.get("platform") === "web" ? n.domains : n.addrs,
        backoff: { max_delay: 300, base_delay: 3, factor: 1.8, jitter: 1.3 },
      }));
    }],
    "/goim/nodes/instances": ["GET", () => {
      if (!options.cluster) {
        return Promise.resolve(_reply(404, -404, "Node list is not configured"));
      }
      return Promise.resolve(_ok(
        options.cluster.nodes().map((n) => ({
          id: n.id,
          advertise: n.host,
          tcp_port: n.tcpPort,
          ws_port: n.wsPort,
          wss_port: n.wssPort,
          connections: n.connections,
          ip_count: n.ipCount,
          updated: n.updated,
          version: n.version ?? null,
        })),
      ));
    }],
    "/healthz": ["GET", () => {
      // Degraded is still 200: the node serves its own connections, and a probe that
      // failed it would restart or drain every node at once when Redis is away.
      const health = cluster.health();
      const status = comet.closing ? "stopping" : health.ok ? "ok" : "degraded";
      const data = { status, connections: comet.connections, ...health.detail };
      return Promise.resolve(comet.closing ? _reply(503, -503, "Shutting down", data) : _ok(data));
    }],
    "/readyz": ["GET", () => {
      // Unlike /healthz, a node whose broker is away is not ready: new clients are better
      // off on a node that hears every push, while its own clients stay connected.
      const state = cluster.state;
      if (comet.closing) {
        return Promise.resolve(
          _reply(503, -503, "Shutting down", { status: "stopping", broker: state }),
        );
      }
      if (state !== "ready") {
        return Promise.resolve(
          _reply(503, -503, `Cluster not ready: ${state}`, { status: "not ready", broker: state }),
        );
      }
      return Promise.resolve(_ok({ status: "ready", broker: state }));
    }],
    "/metrics": ["GET", async () => {
      const text = formatMetrics(await gatherMetrics(comet, { cluster }));
      return new Response(text, {
        headers: {
          "content-type": "text/plain; version=0.0.4; charset=utf-8",
          "cache-control": "no-store",
        },
      });
    }],
  };

  /** Runs the route of `pathname`, whose caller has checked the token. */
  const route = async (pathname: string, url: URL, request: Request): Promise<Response> => {
    const entry = routes[pathname];
    if (!entry) return _reply(404, -404, `Not found: ${pathname}`);
    const [method, handle] = entry;
    if (request.method !== method && !(method === "GET" && request.method === "HEAD")) {
      const res = _reply(405, -405, `Method not allowed: ${request.method}`);
      res.headers.set("allow", method);
      return res;
    }
    // A push accepted now would reach nobody: every connection is being closed.
    if (method === "POST" && comet.closing) return _reply(503, -503, "Shutting down");
    return await handle(url.searchParams, request);
  };
  const admin = options.admin === false ? undefined : createAdminHandler(comet, {
    cluster,
    ...(token !== undefined && { token }),
    ...(signal !== undefined && { signal }),
    push: (kind: AdminPushKind, url, request) => route(`/goim/push/${kind}`, url, request),
  });

  return async (request: Request): Promise<Response> => {
    try {
      const url = _target(request);
      const path = url.pathname;
      // The admin page checks the token itself: a browser brings it as a cookie.
      if (admin && (path === "/admin" || path.startsWith("/admin/"))) {
        return await admin(request, url);
      }
      const refusal = crossOriginRefusal(request, url);
      if (refusal !== undefined) return _reply(403, -403, refusal);
      if (token !== undefined && !hasBearer(request, token)) {
        const res = _reply(401, -401, "Unauthorized: a bearer token is required");
        res.headers.set("www-authenticate", "Bearer");
        return res;
      }
      return await route(path, url, request);
    } catch (err) {
      if (err instanceof _BadRequest) return _reply(err.status, err.code, err.message);
      if (err instanceof BacklogFullError) {
        // Nothing was queued: the sender may retry once the members have caught up.
        const res = _reply(429, -429, err.message);
        res.headers.set("retry-after", String(err.retryAfter));
        return res;
      }
      comet.logger.error("API request failed", { path: request.url, error: err });
      return _reply(500, -500, "Internal server error");
    }
  };
}

/** The hub on its own, for a handler made without a cluster. */
function _alone(comet: Comet): Cluster {
  const cluster = new MemoryCluster();
  cluster.attach(comet, { host: "", tcpPort: 0, wsPort: 0, wssPort: 0 });
  return cluster;
}
