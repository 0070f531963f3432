// The RFC 6455 frame encoders: header lengths, close frames, masking and argument checks.
import assert from "node:assert/strict";
import {
  encodeBinaryMessage,
  encodeClose,
  encodePong,
  encodeWsFrame,
  isWireCloseCode,
  writeWsHeader,
  WsOpcode,
} from "../src/transport/websocket_codec.ts";
import { WebSocketParser } from "../src/transport/websocket_parser.ts";

const MASK = new Uint8Array([0x37, 0xfa, 0x21, 0x3d]);
const utf8 = new TextEncoder();

Deno.test("close frame encoding", () => {
  assert.deepEqual([...encodeClose(1000, "bye")], [0x88, 5, 0x03, 0xe8, 0x62, 0x79, 0x65]);
  assert.deepEqual([...encodeClose()], [0x88, 0]);
  assert.deepEqual([...encodeClose(4000)], [0x88, 2, 0x0f, 0xa0]);
  // A long reason is cut to 123 bytes without splitting a character.
  const frame = encodeClose(1002, "é".repeat(100));
  assert.equal(frame[1], 2 + 122);
  const parser = new WebSocketParser({ masked: false });
  parser.push(frame);
  assert.equal(parser.next(), WsOpcode.Close);
  assert.equal(parser.closeCode, 1002);
  assert.equal(parser.closeReason, "é".repeat(61));
  for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000, 1000.5]) {
    assert.throws(() => encodeClose(code), RangeError, `code ${code}`);
  }
});

Deno.test("frame encoders: binary, pong, masking, and argument checks", () => {
  assert.deepEqual([...encodeBinaryMessage(new Uint8Array([7, 8]))], [0x82, 2, 7, 8]);
  assert.deepEqual([...encodePong(utf8.encode("hi"))], [0x8a, 2, 0x68, 0x69]);
  assert.deepEqual([...encodePong()], [0x8a, 0]);
  const m = encodeWsFrame(WsOpcode.Binary, new Uint8Array([1, 2, 3, 4, 5]), { mask: MASK });
  assert.deepEqual([...m.subarray(0, 6)], [0x82, 0x85, ...MASK]);
  assert.deepEqual([...m.subarray(6)], [1 ^ 0x37, 2 ^ 0xfa, 3 ^ 0x21, 4 ^ 0x3d, 5 ^ 0x37]);
  assert.equal(encodeWsFrame(WsOpcode.Binary, new Uint8Array(1), { fin: false })[0], 0x02);
  assert.throws(() => encodePong(new Uint8Array(126)), RangeError);
  assert.throws(() => encodeWsFrame(WsOpcode.Ping, new Uint8Array(0), { fin: false }), RangeError);
  assert.throws(() => encodeWsFrame(16), RangeError);
  assert.throws(() => encodeWsFrame(-1), RangeError);
  assert.throws(() => encodeWsFrame(2, new Uint8Array(1), { mask: new Uint8Array(3) }), RangeError);
  const out = new Uint8Array(20).fill(0xaa);
  assert.equal(writeWsHeader(out, 3, WsOpcode.Binary, 300), 7);
  assert.deepEqual([...out.subarray(2, 8)], [0xaa, 0x82, 126, 1, 44, 0xaa]);
});

Deno.test("close codes a peer may send, and those that only describe a close", () => {
  for (const code of [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999]) {
    assert.ok(isWireCloseCode(code), `${code}`);
  }
  for (const code of [999, 1004, 1005, 1006, 1015, 2999, 5000]) {
    assert.ok(!isWireCloseCode(code), `${code}`);
  }
});
