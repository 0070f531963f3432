// isLoopback: what counts as reachable from this host only, and every near miss.
import assert from "node:assert/strict";
import { isLoopback } from "../src/auth/open_guard.ts";

Deno.test("isLoopback: localhost, 127.0.0.0/8 and ::1 in any spelling are loopback", () => {
  for (
    const host of [
      "localhost",
      "LOCALHOST",
      "LocalHost",
      "127.0.0.1",
      "127.0.0.0",
      "127.1.2.3",
      "127.255.255.255",
      "::1",
      "[::1]",
      "0:0:0:0:0:0:0:1",
      "0000:0000:0000:0000:0000:0000:0000:0001",
      "::0:1",
      "0::1",
      "0:0:0::0:1",
      "[0:0:0:0:0:0:0:1]",
    ]
  ) {
    assert.equal(isLoopback(host), true, host);
  }
});

Deno.test("isLoopback: unspecified, mapped, public and odd forms are not", () => {
  for (
    const host of [
      // Every interface.
      "0.0.0.0",
      "::",
      "[::]",
      "0:0:0:0:0:0:0:0",
      "",
      // IPv4-mapped and IPv4-compatible loopback: not vouched for.
      "::ffff:127.0.0.1",
      "[::ffff:127.0.0.1]",
      "::ffff:7f00:1",
      "::127.0.0.1",
      "0:0:0:0:0:ffff:127.0.0.1",
      // Other addresses.
      "128.0.0.1",
      "126.255.255.255",
      "10.0.0.1",
      "192.168.1.1",
      "::2",
      "1::1",
      "fe80::1",
      "::1:0",
      "2001:db8::1",
      // Shorthand, octal, hex, padded and out-of-range IPv4.
      "127.1",
      "127.0.1",
      "0127.0.0.1",
      "127.00.0.1",
      "0x7f.0.0.1",
      "2130706433",
      "127.0.0.256",
      "127.0.0.1.",
      " 127.0.0.1",
      "127.0.0.1 ",
      "127.0.0.-1",
      // Zone ids, ports, brackets and broken IPv6.
      "::1%lo",
      "fe80::1%eth0",
      "[::1]:80",
      "127.0.0.1:80",
      "[::1",
      "[localhost]",
      "[127.0.0.1]",
      "::1]",
      ":::1",
      "::1::",
      "0:0:0:0:0:0:0:0:1",
      "0:0:0:0:0:0:1",
      "00000::1",
      "::g",
      // Names other than localhost.
      "localhost.",
      "localhost.localdomain",
      "foo.localhost",
      "my-localhost",
      "example.com",
      "ip6-localhost",
    ]
  ) {
    assert.equal(isLoopback(host), false, host);
  }
});

Deno.test("isLoopback: non-strings are not loopback", () => {
  for (const value of [undefined, null, 127, {}, ["127.0.0.1"]]) {
    assert.equal(isLoopback(value as unknown as string), false);
  }
});
