// Sec-WebSocket-Accept: the pure-JS SHA-1 Comet used until issue 21 against
// node:crypto's createHash, on the same key. Run: deno bench bench/ws_accept_bench.ts
import { createHash } from "node:crypto";
import { websocketAccept } from "../src/transport/ws_handshake.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const encoder = new TextEncoder();

/** The former `_sha1` of src/transport/ws_handshake.ts, kept here so the choice can be measured again. */
function jsSha1(data: Uint8Array): Uint8Array {
  const blocks = ((data.length + 8) >>> 6) + 1;
  const m = new Uint8Array(blocks * 64);
  m.set(data);
  m[data.length] = 0x80;
  const bits = data.length * 8;
  const view = new DataView(m.buffer);
  view.setUint32(m.length - 8, Math.floor(bits / 0x100000000));
  view.setUint32(m.length - 4, bits >>> 0);
  let h0 = 0x67452301, h1 = 0xefcdab89, h2 = 0x98badcfe, h3 = 0x10325476, h4 = 0xc3d2e1f0;
  const w = new Int32Array(80);
  for (let block = 0; block < blocks; block++) {
    for (let i = 0; i < 16; i++) w[i] = view.getInt32(block * 64 + i * 4);
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3]! ^ w[i - 8]! ^ w[i - 14]! ^ w[i - 16]!;
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4;
    for (let i = 0; i < 80; i++) {
      let f: number;
      if (i < 20) f = ((b & c) | (~b & d)) + 0x5a827999;
      else if (i < 40) f = (b ^ c ^ d) + 0x6ed9eba1;
      else if (i < 60) f = ((b & c) | (b & d) | (c & d)) + 0x8f1bbcdc;
      else f = (b ^ c ^ d) + 0xca62c1d6;
      const t = (((a << 5) | (a >>> 27)) + f + e + w[i]!) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  const out = new Uint8Array(20);
  const o = new DataView(out.buffer);
  o.setInt32(0, h0);
  o.setInt32(4, h1);
  o.setInt32(8, h2);
  o.setInt32(12, h3);
  o.setInt32(16, h4);
  return out;
}

function jsAccept(key: string): string {
  return btoa(String.fromCharCode(...jsSha1(encoder.encode(key + GUID))));
}

function nodeAccept(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

// A bench that measures a wrong answer measures nothing.
for (const f of [jsAccept, nodeAccept, websocketAccept]) {
  if (f(KEY) !== ACCEPT) throw new Error(`Accept value is wrong: ${f.name}`);
}

Deno.bench({
  name: "Sec-WebSocket-Accept, pure-JS SHA-1 (before)",
  group: "ws accept",
  baseline: true,
  fn() {
    jsAccept(KEY);
  },
});

Deno.bench({
  name: "Sec-WebSocket-Accept, node:crypto createHash",
  group: "ws accept",
  fn() {
    nodeAccept(KEY);
  },
});

Deno.bench({
  name: "websocketAccept (what the handshake calls now)",
  group: "ws accept",
  fn() {
    websocketAccept(KEY);
  },
});
