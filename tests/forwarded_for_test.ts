import assert from "node:assert/strict";
import { TrustedProxies } from "../src/server/trusted_proxies.ts";
import { forwardedClient } from "../src/transport/forwarded_for.ts";

const proxies = new TrustedProxies(["127.0.0.1", "10.0.0.0/8"]);
const proxy = { hostname: "127.0.0.1", port: 40_000 };
const client = (headers: Record<string, string>, peer = proxy) =>
  forwardedClient(peer, new Headers(headers), proxies).hostname;

Deno.test("through a trusted proxy the client is the right-most untrusted X-Forwarded-For hop", () => {
  assert.equal(client({ "x-forwarded-for": "203.0.113.7" }), "203.0.113.7");
  // The left-most hops are the client's own word: a liar cannot pick the address counted.
  assert.equal(client({ "x-forwarded-for": "198.51.100.1, 203.0.113.7" }), "203.0.113.7");
  // Proxies in a chain are skipped.
  assert.equal(client({ "x-forwarded-for": "203.0.113.7, 10.1.2.3" }), "203.0.113.7");
  assert.equal(client({ "x-forwarded-for": "203.0.113.7:5555" }), "203.0.113.7");
  assert.equal(client({ "x-forwarded-for": "[2001:db8::7]:443" }), "2001:db8::7");
  assert.equal(
    forwardedClient(proxy, new Headers({ "x-forwarded-for": "203.0.113.7" }), proxies).port,
    0,
  );
});

Deno.test("without X-Forwarded-For, X-Real-IP names the client", () => {
  assert.equal(client({ "x-real-ip": "203.0.113.8" }), "203.0.113.8");
  assert.equal(
    client({ "x-real-ip": "203.0.113.8", "x-forwarded-for": "203.0.113.9" }),
    "203.0.113.9",
  );
});

Deno.test("a client's own headers, or a proxy's garbage, change nothing", () => {
  const stranger = { hostname: "203.0.113.50", port: 1234 };
  assert.equal(client({ "x-forwarded-for": "198.51.100.1" }, stranger), "203.0.113.50");
  assert.equal(client({ "x-real-ip": "198.51.100.1" }, stranger), "203.0.113.50");
  assert.equal(client({ "x-forwarded-for": "unknown" }), "127.0.0.1");
  assert.equal(client({ "x-forwarded-for": "" }), "127.0.0.1");
  assert.equal(client({ "x-real-ip": "not an address" }), "127.0.0.1");
  assert.equal(client({}), "127.0.0.1");
  assert.equal(
    forwardedClient(proxy, new Headers({ "x-forwarded-for": "203.0.113.7" }), new TrustedProxies()),
    proxy,
  );
});

Deno.test("when every hop is a trusted proxy the left-most is the client", () => {
  assert.equal(client({ "x-forwarded-for": "10.0.0.5, 10.0.0.6" }), "10.0.0.5");
});
