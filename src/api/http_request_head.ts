/**
 * The request head of the push API's HTTP/1.1 server: the request line and
 * the header lines, parsed and checked before a `Request` is made of them.
 *
 * @module
 */
import { hostPort } from "../host_port.ts";
import { HttpRequestError } from "./http_request_error.ts";

const _TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const _REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/(\d)\.(\d)$/;
const _HOST = /^[A-Za-z0-9._~!$&'()*+,;=%:\[\]-]+$/;
const _OWS = /^[ \t]+|[ \t]+$/g;
/** Control characters but tab have no place in a field value (RFC 9110 section 5.5). */
// deno-lint-ignore no-control-regex
const _CTL = /[\x00-\x08\x0a-\x1f\x7f]/;
const _MAX_HEADERS = 100;

const _decoder = new TextDecoder();

/** @internal A parsed request head. */
export interface RequestHead {
  /** The method, as sent. */
  method: string;
  /** The absolute URL. */
  url: string;
  /** The header lines in order, as sent. */
  headers: [string, string][];
  /** Body bytes declared; -1 for chunked. */
  length: number;
  /** Whether the connection may carry another request after this one. */
  keepAlive: boolean;
  /** Whether the client waits for `100 Continue` before sending the body. */
  expectContinue: boolean;
}

/**
 * @internal Bytes as Latin-1 text, as HTTP heads are; the decoder's UTF-8
 * is the same while they are ASCII, and much faster.
 */
export function latin1Text(bytes: Uint8Array): string {
  let high = 0;
  for (let i = 0; i < bytes.length; i++) high |= bytes[i]!;
  if (high < 0x80) return _decoder.decode(bytes);
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[]);
  }
  return s;
}

/**
 * @internal Parses a request head: the bytes from the request line to the
 * blank line that ends the headers, both CRLFs included. It checks what
 * HTTP/1.1 asks of a server (RFC 9112): one Host, one body length,
 * tokens for names, no control characters in values, HTTP/1.x only, and
 * reads the framing headers once. `addr` is the listener's address, the
 * URL's authority when the Host will not do.
 *
 * @throws {HttpRequestError} With the status to answer: 400, 417, 431, 501
 * or 505.
 */
export function parseRequestHead(bytes: Uint8Array, addr: Deno.NetAddr): RequestHead {
  const lines = latin1Text(bytes).split("\n");
  lines.length -= 2;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.endsWith("\r")) throw new HttpRequestError(400, "Lines must end with CRLF");
    lines[i] = line.slice(0, -1);
  }
  const m = _REQUEST_LINE.exec(lines[0]!);
  if (!m) throw new HttpRequestError(400, "Malformed request line");
  if (m[3] !== "1") throw new HttpRequestError(505, `HTTP version not supported: ${m[3]}.${m[4]}`);
  const http10 = m[4] === "0";
  if (lines.length - 1 > _MAX_HEADERS) throw new HttpRequestError(431, "Too many request headers");
  const headers: [string, string][] = [];
  // The framing headers, read here once: the Request's own Headers are built from the list.
  let host: string | null = null;
  let hosts = 0;
  let te: string | null = null;
  let cl: string | null = null;
  let connection = "";
  let expect: string | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    if (colon <= 0 || !_TOKEN.test(name)) throw new HttpRequestError(400, "Malformed header line");
    const value = line.slice(colon + 1).replace(_OWS, "");
    if (_CTL.test(value)) throw new HttpRequestError(400, `Malformed header value: ${name}`);
    headers.push([name, value]);
    switch (name.toLowerCase()) {
      case "host":
        host = value;
        hosts++;
        break;
      case "transfer-encoding":
        te = te === null ? value : `${te}, ${value}`;
        break;
      case "content-length":
        cl = cl === null ? value : `${cl}, ${value}`;
        break;
      case "connection":
        connection += `,${value.toLowerCase()}`;
        break;
      case "expect":
        expect = value.toLowerCase();
    }
  }
  if (hosts > 1 || (hosts === 0 && !http10)) {
    throw new HttpRequestError(400, "Request must carry one Host header");
  }
  let length = 0;
  if (te !== null) {
    if (http10 || cl !== null) throw new HttpRequestError(400, "Ambiguous request body length");
    if (te.toLowerCase() !== "chunked") {
      throw new HttpRequestError(501, `Transfer coding not supported: ${te.slice(0, 64)}`);
    }
    length = -1;
  } else if (cl !== null) {
    const values = new Set(cl.split(",").map((v) => v.trim()));
    const [value] = values;
    if (values.size !== 1 || !/^\d{1,15}$/.test(value!)) {
      throw new HttpRequestError(400, "Malformed Content-Length");
    }
    length = Number(value);
  }
  if (expect !== null && expect !== "100-continue") {
    throw new HttpRequestError(417, "Only Expect: 100-continue is supported");
  }
  return {
    method: m[1]!,
    url: _url(m[2]!, host, addr),
    headers,
    length,
    keepAlive: !http10 && !connection.split(",").some((t) => t.trim() === "close"),
    expectContinue: expect !== null && !http10,
  };
}

/** The absolute URL of a request target; a Host the URL parser would refuse gives way to the listener's address. */
function _url(target: string, host: string | null, addr: Deno.NetAddr): string {
  if (!target.startsWith("/")) {
    const url = URL.parse(target);
    if (url?.protocol !== "http:" && url?.protocol !== "https:") {
      throw new HttpRequestError(400, "Malformed request target");
    }
    return url.href;
  }
  if (host !== null && _HOST.test(host) && URL.canParse(`http://${host}/`)) {
    return `http://${host}${target}`;
  }
  const { hostname, port } = addr;
  return `http://${hostPort(hostname, port)}${target}`;
}
