import assert from "node:assert/strict";
import { HttpRequestError } from "../src/api/http_request_error.ts";
import { latin1Text, parseRequestHead } from "../src/api/http_request_head.ts";

const addr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 3111 };
const bytes = (text: string) => new TextEncoder().encode(text);
const parse = (text: string) => parseRequestHead(bytes(text), addr);

function refused(text: string, status: number, message: RegExp): void {
  assert.throws(() => parse(text), (err: unknown) => {
    assert.ok(err instanceof HttpRequestError, `expected HttpRequestError, got ${err}`);
    assert.equal(err.status, status);
    assert.match(err.message, message);
    return true;
  });
}

Deno.test("a request head gives its method, URL, headers and framing", () => {
  const head = parse(
    "POST /goim/push/room?operation=1000 HTTP/1.1\r\nHost: comet:3111\r\n" +
      "Content-Length: 5\r\nExpect: 100-continue\r\nX-A:  b \r\n\r\n",
  );
  assert.equal(head.method, "POST");
  assert.equal(head.url, "http://comet:3111/goim/push/room?operation=1000");
  assert.deepEqual(head.headers, [
    ["Host", "comet:3111"],
    ["Content-Length", "5"],
    ["Expect", "100-continue"],
    ["X-A", "b"],
  ]);
  assert.equal(head.length, 5);
  assert.equal(head.keepAlive, true);
  assert.equal(head.expectContinue, true);
});

Deno.test("chunked is length -1; HTTP/1.0 and Connection: close do not keep alive", () => {
  const chunked = parse(
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
  );
  assert.equal(chunked.length, -1);
  assert.equal(chunked.keepAlive, false);
  const old = parse("GET /healthz HTTP/1.0\r\n\r\n");
  assert.equal(old.keepAlive, false);
  assert.equal(old.url, "http://127.0.0.1:3111/healthz", "no Host: the listener's address");
});

Deno.test("a head HTTP/1.1 does not allow is refused with its status", () => {
  refused("GET / HTTP/1.1\r\n\r\n", 400, /one Host/);
  refused("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, /CRLF/);
  refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, /2\.0/);
  refused("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400, /header line/);
  refused(
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    400,
    /Ambiguous/,
  );
  refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400, /Content-Length/);
  refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, /gzip/);
  refused("GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417, /100-continue/);
  refused(`GET / HTTP/1.1\r\nHost: a\r\n${"X: y\r\n".repeat(101)}\r\n`, 431, /Too many/);
});

Deno.test("latin1Text reads every byte as one character", () => {
  assert.equal(latin1Text(new Uint8Array([0x61, 0xe9, 0xff])), "a\u00e9\u00ff");
  assert.equal(latin1Text(bytes("plain")), "plain");
});
