import assert from "node:assert/strict";
import { parseIp, TrustedProxies } from "../src/server/trusted_proxies.ts";

Deno.test("addresses and ranges of both families are trusted, nothing else", () => {
  const proxies = new TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8", "::1"]);
  for (const ip of ["127.0.0.1", "10.0.0.1", "10.255.255.255", "fd12:3456::9", "::1", "[::1]"]) {
    assert.ok(proxies.trusts(ip), ip);
  }
  for (const ip of ["127.0.0.2", "11.0.0.1", "fe80::1", "::2", "203.0.113.7", "", "proxy"]) {
    assert.ok(!proxies.trusts(ip), ip);
  }
  assert.ok(!new TrustedProxies().trusts("127.0.0.1"), "none by default");
  assert.ok(new TrustedProxies().empty);
});

Deno.test("an IPv4 range also covers its IPv6-mapped addresses", () => {
  const proxies = new TrustedProxies(["192.168.0.0/16"]);
  assert.ok(proxies.trusts("::ffff:192.168.3.4"));
  assert.ok(!proxies.trusts("::ffff:192.169.0.1"));
  assert.deepEqual(parseIp("::ffff:10.0.0.1"), parseIp("10.0.0.1"));
  assert.ok(new TrustedProxies(["0.0.0.0/0"]).trusts("8.8.8.8"));
  assert.ok(!new TrustedProxies(["0.0.0.0/0"]).trusts("2001:db8::1"), "v4 /0 is not all of v6");
});

Deno.test("IPv6 text in its shortened and zoned forms is read", () => {
  assert.deepEqual(parseIp("2001:db8::1"), parseIp("2001:0db8:0:0:0:0:0:0001"));
  assert.deepEqual(parseIp("fe80::1%eth0"), parseIp("fe80::1"));
  for (
    const bad of [
      "1.2.3",
      "1.2.3.256",
      "01.2.3.4",
      "1::2::3",
      "12345::",
      "::g",
      "1:2:3:4:5:6:7:8:9",
    ]
  ) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

Deno.test("an entry that is not an address or a range is refused, naming it", () => {
  for (const bad of ["x", "10.0.0.0/33", "::/129", "1.2.3.4/", "1.2.3.4/8x", "", "10.0.0.0/-1"]) {
    assert.throws(() => new TrustedProxies([bad]), (err: unknown) => {
      assert.ok(err instanceof RangeError);
      assert.equal(err.message, `Trusted proxy must be an IP address or a CIDR range: ${bad}`);
      return true;
    });
  }
});
