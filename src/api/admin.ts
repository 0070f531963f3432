import type { Cluster } from "../cluster/cluster.ts";
import type { Comet } from "../server/comet.ts";
import { AdminHistory, type AdminSample, mergeHistories } from "./admin_history.ts";
import { ADMIN_CSS, ADMIN_HTML, ADMIN_JS } from "./admin_page.ts";
import { gatherMetrics } from "./worker_metrics.ts";
import { crossOriginRefusal } from "./origin.ts";
import { constantTimeEqual, hasBearer } from "./token.ts";

/** The push kinds the admin page's form may post. */
export type AdminPushKind = "keys" | "mids" | "room" | "all";

/** What {@linkcode createAdminHandler} needs from the push API around it. */
export interface AdminOptions {
  /** The cluster figures come from. */
  cluster: Cluster;
  /** The API's bearer token; without one the page is open, as the rest of the API. */
  token?: string;
  /** Runs a push as `POST /goim/push/<kind>` with the request's query and body would. */
  push: (kind: AdminPushKind, url: URL, request: Request) => Promise<Response>;
  /**
   * The server's life: while it has not aborted, the page's first request
   * starts one sampler that keeps the last two minutes for
   * `GET /admin/history`. Without it, the history is empty.
   */
  signal?: AbortSignal;
}

/** Answers a request under `/admin`, given its parsed target. */
export type AdminHandler = (request: Request, url: URL) => Promise<Response>;

const _COOKIE = "comet_admin";
/** The workers' bus topic each worker answers with its own samples. */
const _HISTORY_TOPIC = "admin-history";
const _KINDS = new Set<string>(["keys", "mids", "room", "all"]);
const _encoder = new TextEncoder();

/**
 * Only what the page itself serves: its script, its stylesheet and fetches to
 * its own origin. Data is shown through `textContent` and SVG attributes, so
 * no inline script or style is needed either.
 */
const _CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

function _json(status: number, code: number, message: string, data: unknown = null): Response {
  return new Response(JSON.stringify({ code, message, data }), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

function _asset(body: string, type: string): Response {
  return new Response(body, {
    headers: {
      "content-type": `${type}; charset=utf-8`,
      "cache-control": "no-store",
      "content-security-policy": _CSP,
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      // The page may have been opened with the token in its query: never pass it on.
      "referrer-policy": "no-referrer",
    },
  });
}

function _cookie(request: Request, name: string): string | undefined {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * What the admin cookie holds: a digest of the token rather than the token,
 * so the cookie opens `/admin` and nothing else, and survives a restart or
 * another node with the same token.
 */
async function _session(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", _encoder.encode(`comet admin\0${token}`));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The admin page of the push API, served under `/admin`: live figures and
 * charts from `GET /admin/stats`, the last two minutes of the charts from
 * `GET /admin/history` (kept on the server, so a reload draws them at once),
 * and a push form posting to `POST /admin/push/<kind>`.
 *
 * With a token, a browser cannot send a bearer header when it navigates, so
 * `GET /admin?token=TOKEN` checks it once, sets an HttpOnly, SameSite=Strict
 * cookie scoped to `/admin`, and redirects to `/admin` without the query. The
 * page's own requests then carry the cookie; `Authorization: Bearer` works
 * as well.
 *
 * @example
 * ```ts ignore
 * import { createApiHandler } from "./push_api.ts";
 * import { Comet } from "../server/comet.ts";
 *
 * // createApiHandler mounts it: open http://127.0.0.1:3111/admin?token=secret
 * Deno.serve({ port: 3111 }, createApiHandler(new Comet(), { token: "secret" }));
 * ```
 */
export function createAdminHandler(comet: Comet, options: AdminOptions): AdminHandler {
  const { cluster, token, push } = options;
  const history = new AdminHistory(comet, options.signal ? { signal: options.signal } : {});
  const workers = cluster.workers;
  // Asked by another worker's page: this one starts keeping its figures too.
  workers?.answer(_HISTORY_TOPIC, () => {
    history.start();
    return history.samples();
  });
  const samples = async (): Promise<AdminSample[]> => {
    if (workers === undefined) return history.samples();
    const { replies } = await workers.gather<AdminSample[]>(_HISTORY_TOPIC);
    const own = replies[0]?.workerId === workers.workerId ? [] : [history.samples()];
    return mergeHistories([...own, ...replies.map((r) => r.value)]);
  };
  let session: Promise<string> | undefined;
  const expected = () => session ??= _session(token!);

  const authorized = async (request: Request): Promise<boolean> => {
    if (token === undefined || hasBearer(request, token)) return true;
    const given = _cookie(request, _COOKIE);
    return given !== undefined && constantTimeEqual(given, await expected());
  };

  return async (request, url) => {
    const path = url.pathname;
    // The cookie is SameSite=Strict, yet without a token there is no cookie to
    // withhold: a cross-site page is refused on what it is, as on the push API.
    const refusal = crossOriginRefusal(request, url);
    if (refusal !== undefined) return _json(403, -403, refusal);
    const method = request.method === "HEAD" ? "GET" : request.method;
    if (path === "/admin/") {
      return new Response(null, { status: 308, headers: { location: "/admin" } });
    }
    if (path === "/admin" && method === "GET" && url.searchParams.has("token")) {
      const given = url.searchParams.get("token")!;
      if (token !== undefined && !constantTimeEqual(given, token)) return _unauthorized();
      const headers = new Headers({ location: "/admin", "cache-control": "no-store" });
      if (token !== undefined) {
        // Secure where the page was reached over TLS, directly or through a proxy.
        const tls = url.protocol === "https:" ||
          request.headers.get("x-forwarded-proto")?.toLowerCase() === "https";
        headers.set(
          "set-cookie",
          `${_COOKIE}=${await expected()}; Path=/admin; HttpOnly; SameSite=Strict` +
            (tls ? "; Secure" : ""),
        );
      }
      return new Response(null, { status: 303, headers });
    }
    if (!(await authorized(request))) return _unauthorized();
    history.start();

    if (path.startsWith("/admin/push/")) {
      const kind = path.slice("/admin/push/".length);
      if (!_KINDS.has(kind)) return _json(404, -404, `Not found: ${path}`);
      if (request.method !== "POST") return _notAllowed(request.method, "POST");
      return await push(kind as AdminPushKind, url, request);
    }
    const route = _PAGES[path];
    if (route === undefined && path !== "/admin/stats" && path !== "/admin/history") {
      return _json(404, -404, `Not found: ${path}`);
    }
    if (method !== "GET") return _notAllowed(request.method, "GET");
    if (route !== undefined) return route();
    if (path === "/admin/history") {
      return _json(200, 0, "", { interval: history.interval, samples: await samples() });
    }
    return _json(200, 0, "", await gatherMetrics(comet, { cluster }));
  };
}

const _PAGES: Record<string, () => Response> = {
  "/admin": () => _asset(ADMIN_HTML, "text/html"),
  "/admin/app.js": () => _asset(ADMIN_JS, "text/javascript"),
  "/admin/app.css": () => _asset(ADMIN_CSS, "text/css"),
};

function _unauthorized(): Response {
  const res = _json(
    401,
    -401,
    "Unauthorized: open /admin?token=TOKEN once, or send Authorization: Bearer TOKEN",
  );
  res.headers.set("www-authenticate", "Bearer");
  return res;
}

function _notAllowed(method: string, allow: string): Response {
  const res = _json(405, -405, `Method not allowed: ${method}`);
  res.headers.set("allow", allow);
  return res;
}
