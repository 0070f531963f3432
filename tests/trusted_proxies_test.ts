import assert from "node:assert/strict";
import { isIP } from "node:net";
import { parseIp, TrustedProxies } from "../src/server/trusted_proxies.ts";
import { mulberry32 as _random } from "./_random.ts";

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

// --- a seeded table against a simple reference ------------------------------------

/** The reference: an address as one 128-bit number, a range as a masked compare. */
function _big(groups: readonly number[]): bigint {
  return groups.reduce((n, g) => (n << 16n) | BigInt(g), 0n);
}

function _inRange(addr: bigint, base: bigint, bits: number): boolean {
  const mask = bits === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - bits)) - 1n);
  return (addr & mask) === (base & mask);
}

/** `groups` as IPv6 text in one of its spellings: full, padded, `::`-shortened, upper case. */
function _v6Text(groups: readonly number[], rnd: () => number): string {
  let parts = groups.map((g) => g.toString(16));
  if (rnd() < 0.3) parts = parts.map((p) => p.padStart(4, "0"));
  if (rnd() < 0.3) parts = parts.map((p) => p.toUpperCase());
  if (rnd() < 0.5) {
    const at = Math.floor(rnd() * 8);
    const len = 1 + Math.floor(rnd() * (8 - at));
    if (groups.slice(at, at + len).every((g) => g === 0)) {
      return `${parts.slice(0, at).join(":")}::${parts.slice(at + len).join(":")}`;
    }
  }
  return parts.join(":");
}

/** Mostly zeros, sometimes the IPv4-mapped prefix: ranges then meet their addresses. */
function _groups(rnd: () => number): number[] {
  const g = Array.from({ length: 8 }, () => rnd() < 0.5 ? 0 : Math.floor(rnd() * 0x10000));
  if (rnd() < 0.4) g.splice(0, 6, 0, 0, 0, 0, 0, 0xffff);
  return g;
}

function _v4Text(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

Deno.test("a seeded table of addresses and ranges agrees with a 128-bit reference", () => {
  const rnd = _random(0xc0ffee);
  for (let i = 0; i < 3_000; i++) {
    const v4 = rnd() < 0.5;
    const base = v4 ? Math.floor(rnd() * 2 ** 32) : 0;
    const baseGroups = v4 ? [0, 0, 0, 0, 0, 0xffff, base >>> 16, base & 0xffff] : _groups(rnd);
    const bits = Math.floor(rnd() * ((v4 ? 32 : 128) + 1));
    const entry = `${v4 ? _v4Text(base) : _v6Text(baseGroups, rnd)}/${bits}`;
    const proxies = new TrustedProxies([entry]);
    for (let j = 0; j < 4; j++) {
      // Near the base (a few low bits flipped) or anywhere.
      const groups = j < 2 ? [...baseGroups] : _groups(rnd);
      if (j === 1) groups[7] = (groups[7]! ^ Math.floor(rnd() * 0x10000)) & 0xffff;
      const mapped = groups.slice(0, 6).join() === "0,0,0,0,0,65535";
      const text = mapped && rnd() < 0.7
        ? _v4Text(groups[6]! * 0x10000 + groups[7]!)
        : _v6Text(groups, rnd);
      const want = _inRange(_big(groups), _big(baseGroups), v4 ? bits + 96 : bits);
      assert.equal(proxies.trusts(text), want, `${text} in ${entry}`);
    }
  }
});

Deno.test("what is read as an address agrees with node:net's isIP, mutations included", () => {
  const rnd = _random(7);
  const alphabet = "0123456789abcdef:.";
  for (let i = 0; i < 5_000; i++) {
    const groups = _groups(rnd);
    let text = rnd() < 0.3 ? _v4Text(Math.floor(rnd() * 2 ** 32)) : _v6Text(groups, rnd);
    if (rnd() < 0.2 && !text.includes(".")) {
      text = `${text.split(":").slice(0, -2).join(":")}:${_v4Text(Math.floor(rnd() * 2 ** 32))}`;
    } else if (rnd() < 0.1) {
      // An IPv4 part anywhere but last: never an address.
      text = `${_v4Text(Math.floor(rnd() * 2 ** 32))}::${rnd() < 0.5 ? "" : "5"}`;
    }
    // Up to three edits: a character dropped, doubled or put in.
    for (let n = Math.floor(rnd() * 4); n > 0; n--) {
      const at = Math.floor(rnd() * (text.length + 1));
      const pick = rnd();
      const ch = alphabet[Math.floor(rnd() * alphabet.length)]!;
      text = pick < 0.33
        ? text.slice(0, at) + text.slice(at + 1)
        : pick < 0.66
        ? text.slice(0, at) + text.slice(at, at + 1) + text.slice(at)
        : text.slice(0, at) + ch + text.slice(at);
    }
    assert.equal(parseIp(text) !== undefined, isIP(text) !== 0, JSON.stringify(text));
  }
});

Deno.test("an IPv4 range written in brackets or with a zone keeps its 32-bit prefix", () => {
  for (const entry of ["[10.0.0.0]/8", "10.0.0.0%eth0/8", " 10.0.0.0 /8"]) {
    const proxies = new TrustedProxies([entry]);
    assert.ok(proxies.trusts("10.1.2.3"), entry);
    // Read as 8 of 128 bits it would take in every IPv4 address.
    assert.ok(!proxies.trusts("8.8.8.8"), entry);
    assert.ok(!proxies.trusts("::1"), entry);
  }
});
