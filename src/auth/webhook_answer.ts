/**
 * What the application's answer to a `WebhookOperator` call means: the
 * session it grants, or the refusal the client is shown. Everything here
 * reads an answer; building and sending the call is the operator's.
 *
 * @module
 */
import { WebhookError, WebhookUnavailableError } from "./webhook_error.ts";
import type { ExpiringSession } from "./jwt_operator.ts";

const _utf8 = new TextDecoder("utf-8", { fatal: true });
const _MAX_REASON = 200;
const _MAX_ID_LENGTH = 256;

/** The application's refusal reason as the client may see it: short, printable. */
function _reason(text: string): string {
  // deno-lint-ignore no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return clean.length > _MAX_REASON ? clean.slice(0, _MAX_REASON) : clean;
}

function _isInt32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff;
}

/**
 * @internal Reads at most `cap` bytes of the auth service's answer; cancels
 * the rest.
 *
 * @throws {WebhookUnavailableError} `bad_answer` when the body is larger.
 */
export async function readAnswer(res: Response, cap: number): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (declared > cap) {
    await res.body?.cancel();
    throw new WebhookUnavailableError("bad_answer", "auth service answer too large");
  }
  if (res.body === null) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > cap) {
        throw new WebhookUnavailableError("bad_answer", "auth service answer too large");
      }
      chunks.push(value);
    }
  } catch (err) {
    await reader.cancel().catch(() => {});
    throw err;
  } finally {
    reader.releaseLock();
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function _parseJson(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const value = JSON.parse(_utf8.decode(bytes));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

function _bad(detail: string): WebhookUnavailableError {
  return new WebhookUnavailableError("bad_answer", `auth service answer is invalid: ${detail}`);
}

/**
 * The session in a 2xx answer. `mid` must be present (0 for anonymous): an
 * answer that says neither who nor why not is a broken application, and
 * refusing is the safe reading of it.
 */
function _session(o: Record<string, unknown>): ExpiringSession {
  const session: ExpiringSession = {};
  const mid = o.mid;
  if (typeof mid === "number" && Number.isSafeInteger(mid) && mid >= 0) session.mid = mid;
  else if (typeof mid === "string" && /^(?:0|[1-9][0-9]{0,15})$/.test(mid)) {
    session.mid = Number(mid);
    if (!Number.isSafeInteger(session.mid)) throw _bad("mid is out of range");
  } else throw _bad("mid is not a non-negative integer");
  for (const name of ["key", "room", "platform"] as const) {
    const v = o[name];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string" || v.length > _MAX_ID_LENGTH) throw _bad(`${name} is not a string`);
    session[name] = v;
  }
  if (o.accepts !== undefined && o.accepts !== null) {
    if (!Array.isArray(o.accepts) || o.accepts.length > 1024 || !o.accepts.every(_isInt32)) {
      throw _bad("accepts is not an array of 32-bit integers");
    }
    session.accepts = o.accepts;
  }
  if (o.heartbeat !== undefined && o.heartbeat !== null) {
    const s = o.heartbeat;
    if (typeof s !== "number" || !(s > 0) || s > 86_400) {
      throw _bad("heartbeat is not a number of seconds up to a day");
    }
    session.heartbeat = s * 1000;
  }
  if (o.rooms !== undefined && o.rooms !== null) {
    if (
      !Array.isArray(o.rooms) || o.rooms.length > 1024 ||
      !o.rooms.every((r) => typeof r === "string")
    ) {
      throw _bad("rooms is not an array of room ids");
    }
    session.rooms = o.rooms as string[];
  }
  if (o.expires_at !== undefined && o.expires_at !== null) {
    const s = o.expires_at;
    if (typeof s !== "number" || !Number.isFinite(s)) throw _bad("expires_at is not a number");
    session.expiresAt = s * 1000;
  }
  return session;
}

/**
 * @internal The session a read answer grants: a JSON object with `mid` and
 * no `error`, under a 2xx status.
 *
 * @throws {WebhookError} `refused` when the answer says `error`, or is a
 * 4xx.
 * @throws {WebhookUnavailableError} `bad_answer` when it cannot be read as
 * either.
 */
export function sessionOfAnswer(res: Response, bytes: Uint8Array): ExpiringSession {
  const answer = _parseJson(bytes);
  if (typeof answer?.error === "string") {
    throw new WebhookError("refused", _reason(answer.error) || "refused");
  }
  if (!res.ok) throw new WebhookError("refused", `auth service refused: ${res.status}`);
  if (answer === null) throw _bad("not a JSON object");
  if (answer.error !== undefined && answer.error !== null) throw _bad("error is not a string");
  return _session(answer);
}
