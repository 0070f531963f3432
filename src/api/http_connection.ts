/**
 * One connection of the push API's `HttpServer`: the HTTP/1.1
 * request parser, the deadlines and the response writer. Internal to the
 * server; not part of the module's exports.
 *
 * @module
 */
import { closeQuietly } from "../transport/traffic.ts";
import { HttpRequestError } from "./http_request_error.ts";
import { latin1Text, parseRequestHead, type RequestHead } from "./http_request_head.ts";
import type { HttpContext } from "./http_context.ts";

/** Reason phrases of the statuses the API answers; others go without one, which HTTP allows. */
const _REASONS = new Map(
  ("200 OK|204 No Content|303 See Other|304 Not Modified|308 Permanent Redirect|400 Bad Request|" +
    "401 Unauthorized|403 Forbidden|404 Not Found|405 Method Not Allowed|408 Request Timeout|" +
    "413 Content Too Large|417 Expectation Failed|431 Request Header Fields Too Large|" +
    "500 Internal Server Error|501 Not Implemented|503 Service Unavailable|" +
    "505 HTTP Version Not Supported").split("|").map((r) => [Number(r.slice(0, 3)), r.slice(4)]),
);
/** Managed here: a handler's own would contradict the framing. */
const _HOP = new Set(["connection", "content-length", "keep-alive", "transfer-encoding"]);
const _CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
/** An unread body up to this size is read and dropped after the answer, to keep the connection. */
const _DRAIN = 64 * 1024;
/** How long a closing connection whose body is unread drains it, so the client reads its answer rather than a reset. */
const _LINGER = 1_000;

const _encoder = new TextEncoder();

/**
 * `text` as bytes, one per character (HTTP heads are Latin-1), followed by
 * `tail`. The encoder's UTF-8 is the same bytes while the text is ASCII, and
 * several times faster than a loop.
 */
function _latin1(text: string, tail?: Uint8Array): Uint8Array {
  const out = new Uint8Array(text.length + (tail?.length ?? 0));
  const { read, written } = _encoder.encodeInto(text, out.subarray(0, text.length));
  if (read !== text.length || written !== text.length) {
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  }
  if (tail) out.set(tail, text.length);
  return out;
}

let _date = "";
let _dateAt = -Infinity;

/** The response head; `length` null for a status without a body. */
function _head(
  status: number,
  reason: string,
  headers: Headers,
  length: number | null,
  close: boolean,
): string {
  let s = `HTTP/1.1 ${status} ${reason || (_REASONS.get(status) ?? "")}\r\n`;
  for (const [name, value] of headers) if (!_HOP.has(name)) s += `${name}: ${value}\r\n`;
  if (!headers.has("date")) {
    const now = Date.now();
    if (now - _dateAt >= 1000) [_date, _dateAt] = [new Date(now).toUTCString(), now];
    s += `date: ${_date}\r\n`;
  }
  if (length !== null) s += `content-length: ${length}\r\n`;
  return s + (close ? "connection: close\r\n\r\n" : "\r\n");
}

/** The server's own refusal, in the goim envelope every API answer uses; it always closes. */
export function refusal(status: number, message: string): Uint8Array {
  const body = JSON.stringify({ code: -status, message, data: null });
  const headers = new Headers({ "content-type": "application/json; charset=utf-8" });
  if (status === 503) headers.set("retry-after", "1");
  return _latin1(_head(status, "", headers, body.length, true) + body);
}

/** Writes all of `data`, over as many writes as the socket takes. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length;) at += await conn.write(data.subarray(at));
}

/** What a connection waits for, and so which deadline runs. */
type _Phase = "head" | "body" | "busy" | "write" | "idle";

/** One accepted connection: reads requests one after another, answers each in turn. */
export class HttpConnection {
  /**
   * Settles once the connection is closed; a handler still running then
   * (cut off by a shutdown) finishes on its own, its answer dropped.
   */
  readonly done: Promise<void>;
  #done!: () => void;
  #server: HttpContext;
  #conn: Deno.Conn;
  #buf = new Uint8Array(8192);
  #start = 0;
  #end = 0;
  /** Where the search for the end of the head resumes, and where its current line starts: offsets from `#start`. */
  #scanned = 0;
  #lineAt = 0;
  #phase: _Phase = "head";
  #deadline = Infinity;
  #closed = false;
  /** Between a request's head and the end of its answer. */
  #inFlight = false;
  /** An answer has gone out, or is going, for the request at hand. */
  #answered = false;
  /** Of the body at hand: bytes left (of its chunk, when chunked), and whether its end was read. */
  #left = 0;
  #chunked = false;
  #bodyDone = true;
  /** The client said `Expect: 100-continue` and has not been told to go on: it may not send the body. */
  #held = false;
  /** The body at hand could not be read to its end: its framing is lost with it. */
  #broken = false;

  constructor(server: HttpContext, conn: Deno.Conn) {
    this.#server = server;
    this.#conn = conn;
    this.#arm("head");
    this.done = new Promise((resolve) => (this.#done = resolve));
    void this.#run();
  }

  /** At shutdown: closes now unless a request is in flight, which closes after its answer. */
  stop(): void {
    if (!this.#inFlight) this.abort();
  }

  /** Closes the connection now, whatever it is doing. Idempotent. */
  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#deadline = Infinity;
    closeQuietly(this.#conn);
    this.#done();
  }

  /** Acts on a deadline passed by `now` (`performance.now()`); the server's sweep calls it. */
  check(now: number): void {
    if (now < this.#deadline) return;
    this.#deadline = Infinity;
    const phase = this.#phase;
    if (phase === "head" || phase === "body") {
      this.#server.stats[phase === "head" ? "headerTimeouts" : "bodyTimeouts"]++;
      const what = phase === "head" ? "headers" : "body";
      void this.#refuse(new HttpRequestError(408, `Request ${what} not received in time`));
    } else {
      this.#server.stats.idleTimeouts++;
      this.abort();
    }
  }

  #arm(phase: _Phase, ms?: number): void {
    const { headerTimeout, bodyTimeout, idleTimeout } = this.#server.limits;
    this.#phase = phase;
    ms ??= phase === "head"
      ? headerTimeout
      : phase === "body"
      ? bodyTimeout
      : phase === "busy"
      ? Infinity
      : idleTimeout;
    this.#deadline = performance.now() + ms;
  }

  /**
   * Answers the request at hand with the server's own error, unless already
   * answered, and closes; `linger` when no read is pending.
   */
  async #refuse(err: HttpRequestError, linger = false): Promise<void> {
    if (this.#closed) return;
    if (!this.#answered) {
      this.#answered = true;
      if (err.status !== 408) this.#server.stats.badRequests++;
      this.#arm("write");
      try {
        await writeAll(this.#conn, refusal(err.status, err.message));
        if (linger && !this.#server.stopping) await this.#linger();
      } catch {
        // The client is gone: nothing more to tell it.
      }
    }
    this.abort();
  }

  async #run(): Promise<void> {
    try {
      while (!this.#closed) {
        const head = await this.#readHead();
        if (head === null || !await this.#exchange(head)) break;
      }
    } catch (err) {
      if (err instanceof HttpRequestError) await this.#refuse(err, true);
      // Anything else is the socket: reset, or closed by a deadline. Nothing to tell.
    } finally {
      this.abort();
    }
  }

  /** Reads more bytes; false at the end of the stream. */
  async #fill(limit: number): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const size = Math.min(this.#buf.length * 2, limit + 4096);
        if (size <= this.#buf.length) throw new HttpRequestError(431, "Request headers too large");
        const grown = new Uint8Array(size);
        grown.set(this.#buf);
        this.#buf = grown;
      }
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  /** The next request's head; null when the client is done. */
  async #readHead(): Promise<RequestHead | null> {
    const max = this.#server.limits.maxHeaderBytes;
    this.#scanned = this.#lineAt = 0;
    for (;;) {
      if (this.#phase === "idle" && this.#end > this.#start) this.#arm("head");
      const at = this.#headEnd();
      const size = at >= 0 ? at - this.#start : this.#end - this.#start;
      if (size > max) throw new HttpRequestError(431, "Request headers too large");
      if (at >= 0) {
        const head = parseRequestHead(this.#buf.subarray(this.#start, at), this.#server.addr);
        this.#start = at;
        return head;
      }
      if (!await this.#fill(max)) {
        if (this.#end === this.#start) return null;
        throw new HttpRequestError(400, "Request ended within its headers");
      }
    }
  }

  /** Where the head ends (past its blank line), or -1 when not read yet. Skips blank lines before it. */
  #headEnd(): number {
    const b = this.#buf;
    for (let i = this.#start + this.#scanned; i < this.#end; i++) {
      if (b[i] !== 10) continue;
      const line = this.#start + this.#lineAt;
      if (i === line || (i === line + 1 && b[line] === 13)) {
        if (this.#lineAt > 0) return i + 1;
        // A blank line before the request line: RFC 9112 section 2.2 says to ignore it.
        this.#start = i + 1;
        this.#lineAt = 0;
        continue;
      }
      this.#lineAt = i + 1 - this.#start;
    }
    this.#scanned = this.#end - this.#start;
    return -1;
  }

  /** Runs the handler on one request and writes its answer; true to read the next one. */
  async #exchange(head: RequestHead): Promise<boolean> {
    const server = this.#server;
    if (this.#closed) return false;
    this.#inFlight = true;
    this.#answered = false;
    this.#chunked = head.length < 0;
    this.#left = this.#chunked ? 0 : head.length;
    this.#bodyDone = head.length === 0;
    this.#held = head.expectContinue && this.#end === this.#start;
    this.#broken = false;
    let body: BodyInit | null = null;
    if (this.#bodyDone || head.method === "GET" || head.method === "HEAD") {
      // No body, or one the handler will not see: drained or closed on below.
    } else if (!this.#chunked && this.#end - this.#start >= head.length) {
      // Arrived with its head, as a small push does: no stream to run.
      body = this.#buf.slice(this.#start, this.#start += head.length);
      this.#left = 0;
      this.#bodyDone = true;
      this.#held = false;
    } else {
      body = this.#stream(head.expectContinue);
    }
    this.#arm(this.#bodyDone ? "busy" : "body");
    let request: Request;
    try {
      request = new Request(head.url, { method: head.method, headers: head.headers, body });
    } catch (err) {
      throw new HttpRequestError(400, `Malformed request: ${(err as Error).message}`);
    }
    let response: Response;
    let payload: Uint8Array;
    try {
      response = await server.handler(request);
      payload = await response.bytes();
    } catch (err) {
      response = server.onError(err);
      payload = await response.bytes().catch(() => new Uint8Array(0));
    }
    if (this.#closed || this.#answered) return false;
    this.#answered = true;
    // A small body left unread (a 401 or 405 does not read it) is read past below.
    const drain = !this.#bodyDone && !this.#held && !this.#broken &&
      (this.#chunked || this.#left <= _DRAIN);
    const keep = head.keepAlive && (this.#bodyDone || drain) && !server.stopping &&
      !/\bclose\b/i.test(response.headers.get("connection") ?? "");
    const status = response.status;
    const empty = status === 204 || status === 304;
    const text = _head(
      status,
      response.statusText,
      response.headers,
      empty ? null : payload.length,
      !keep,
    );
    const out = _latin1(text, empty || head.method === "HEAD" ? undefined : payload);
    this.#arm("write");
    await writeAll(this.#conn, out);
    this.#inFlight = false;
    if (keep && !this.#bodyDone) {
      this.#arm("body");
      for (let read = 0; !this.#bodyDone;) {
        const chunk = await this.#readBody();
        if (chunk !== null && (read += chunk.length) > _DRAIN) return false;
      }
    }
    if (keep) {
      this.#answered = false;
      this.#arm("idle");
      return true;
    }
    if (!this.#bodyDone && !server.stopping) await this.#linger();
    return false;
  }

  /** Half-closes and reads until the client closes too, briefly, so that unread body bytes do not turn the close into a reset that could destroy the answer. */
  async #linger(): Promise<void> {
    this.#arm("write", _LINGER);
    await this.#conn.closeWrite();
    const sink = new Uint8Array(16384);
    for (let total = 0; total < 1 << 20;) {
      const n = await this.#conn.read(sink);
      if (n === null) return;
      total += n;
    }
  }

  /** The body as the handler reads it: nothing is read before it asks. */
  #stream(expectContinue: boolean): ReadableStream<Uint8Array> {
    let asked = !expectContinue;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (!asked) {
          asked = true;
          if (this.#start === this.#end) await writeAll(this.#conn, _CONTINUE);
          this.#held = false;
        }
        let chunk: Uint8Array | null;
        try {
          chunk = await this.#readBody();
        } catch (err) {
          this.#broken = true;
          throw err;
        }
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
    }, { highWaterMark: 0 });
  }

  async #readBody(): Promise<Uint8Array | null> {
    const max = this.#server.limits.maxHeaderBytes;
    while (this.#left === 0) {
      if (this.#bodyDone) return null;
      if (!this.#chunked) {
        this.#bodyEnd();
        return null;
      }
      const size = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;.*)?$/.exec(await this.#line(4096));
      if (!size) throw new HttpRequestError(400, "Malformed chunk size");
      this.#left = parseInt(size[1]!, 16);
      if (this.#left === 0) {
        for (let bytes = 0;;) {
          const trailer = await this.#line(max);
          if (trailer === "") break;
          if ((bytes += trailer.length) > max) {
            throw new HttpRequestError(431, "Trailers too large");
          }
        }
        this.#bodyEnd();
        return null;
      }
    }
    if (this.#start === this.#end && !await this.#fill(max)) {
      throw new HttpRequestError(400, "Request body ended early");
    }
    const n = Math.min(this.#left, this.#end - this.#start);
    const chunk = this.#buf.slice(this.#start, this.#start += n);
    this.#left -= n;
    if (this.#left === 0 && this.#chunked && await this.#line(2) !== "") {
      throw new HttpRequestError(400, "Chunk data must end with CRLF");
    }
    if (this.#left === 0 && !this.#chunked) this.#bodyEnd();
    return chunk;
  }

  #bodyEnd(): void {
    this.#bodyDone = true;
    if (this.#phase === "body") this.#arm("busy");
  }

  /** One CRLF-ended line of a chunked body, without its CRLF. */
  async #line(limit: number): Promise<string> {
    for (;;) {
      const at = this.#buf.subarray(this.#start, this.#end).indexOf(10);
      if (at >= 0) {
        const end = this.#start + at;
        if (at === 0 || this.#buf[end - 1] !== 13) {
          throw new HttpRequestError(400, "Lines must end with CRLF");
        }
        const line = latin1Text(this.#buf.subarray(this.#start, end - 1));
        this.#start = end + 1;
        return line;
      }
      if (this.#end - this.#start > limit) throw new HttpRequestError(400, "Chunk line too long");
      if (!await this.#fill(limit)) throw new HttpRequestError(400, "Request body ended early");
    }
  }
}
