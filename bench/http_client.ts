// The harness's HTTP client for Comet's push API: keep-alive HTTP/1.1 over
// one loopback connection, parsed from bytes.

/** An HTTP response: its status and body bytes. */
export interface HttpResponse {
  status: number;
  body: Uint8Array;
}

/**
 * A minimal HTTP/1.1 keep-alive client over one loopback connection: much
 * cheaper per request than fetch, so the pusher does not become the limit.
 * Request heads are cached per target; responses are parsed from bytes.
 *
 * @example
 * ```ts
 * import { HttpClient, isOk } from "./http_client.ts";
 * const api = await HttpClient.connect(3111);
 * const r = await api.post("/goim/push/all?operation=1000", new Uint8Array(64));
 * console.log(isOk(r));
 * api.close();
 * ```
 */
export class HttpClient {
  #conn: Deno.TcpConn;
  #buf = new Uint8Array(16_384);
  #rest: Uint8Array = new Uint8Array(0);
  #host: string;
  #heads = new Map<string, Uint8Array>();

  private constructor(conn: Deno.TcpConn, host: string) {
    this.#conn = conn;
    this.#host = host;
  }

  /** Connects to `hostname:port`, with Nagle off. */
  static async connect(port: number, hostname = "127.0.0.1"): Promise<HttpClient> {
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    return new HttpClient(conn, `${hostname}:${port}`);
  }

  /** POSTs `body`; resolves with the status and the response body bytes. */
  async post(target: string, body: Uint8Array): Promise<HttpResponse> {
    const key = `${target} ${body.length}`;
    let head = this.#heads.get(key);
    if (head === undefined) {
      head = new TextEncoder().encode(
        `POST ${target} HTTP/1.1\r\nHost: ${this.#host}\r\n` +
          `Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      if (this.#heads.size < 10_000) this.#heads.set(key, head);
    }
    const req = new Uint8Array(head.length + body.length);
    req.set(head);
    req.set(body, head.length);
    let at = 0;
    while (at < req.length) at += await this.#conn.write(at === 0 ? req : req.subarray(at));
    return await this.#response();
  }

  async #fill(): Promise<void> {
    const n = await this.#conn.read(this.#buf);
    if (n === null) throw new Error("API connection closed");
    if (this.#rest.length === 0) {
      this.#rest = this.#buf.slice(0, n);
      return;
    }
    const joined = new Uint8Array(this.#rest.length + n);
    joined.set(this.#rest);
    joined.set(this.#buf.subarray(0, n), this.#rest.length);
    this.#rest = joined;
  }

  async #response(): Promise<HttpResponse> {
    let end: number;
    while ((end = _indexOfCrlf2(this.#rest)) < 0) await this.#fill();
    const b = this.#rest;
    // "HTTP/1.1 200 "
    const status = (b[9]! - 48) * 100 + (b[10]! - 48) * 10 + (b[11]! - 48);
    const len = _contentLength(b, end);
    this.#rest = b.subarray(end + 4);
    if (len < 0) {
      const head = new TextDecoder().decode(b.subarray(0, end));
      throw new Error(`Response without a content-length: ${head}`);
    }
    while (this.#rest.length < len) await this.#fill();
    const body = this.#rest.subarray(0, len);
    this.#rest = this.#rest.subarray(len);
    return { status, body };
  }

  /** Closes the connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // closed
    }
  }
}

function _indexOfCrlf2(b: Uint8Array): number {
  for (let i = 3; i < b.length; i++) {
    if (b[i] === 10 && b[i - 1] === 13 && b[i - 2] === 10 && b[i - 3] === 13) return i - 3;
  }
  return -1;
}

const _CL = new TextEncoder().encode("\r\ncontent-length:");

/** The content-length value in the head `b[0..end)`, or -1. */
function _contentLength(b: Uint8Array, end: number): number {
  outer: for (let i = 0; i + _CL.length <= end; i++) {
    for (let j = 0; j < _CL.length; j++) {
      const c = b[i + j]!;
      if ((c >= 65 && c <= 90 ? c + 32 : c) !== _CL[j]) continue outer;
    }
    let k = i + _CL.length;
    while (b[k] === 32) k++;
    let n = 0;
    for (; k < end && b[k]! >= 48 && b[k]! <= 57; k++) n = n * 10 + b[k]! - 48;
    return n;
  }
  return -1;
}

const _OK = new TextEncoder().encode('{"code":0,');

/** Whether `r` is a 200 with a goim envelope of code 0. */
export const isOk = (r: HttpResponse): boolean =>
  r.status === 200 && r.body.length >= _OK.length && _OK.every((c, i) => r.body[i] === c);
