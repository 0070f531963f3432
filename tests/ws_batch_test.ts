import assert from "node:assert/strict";
import { encodeFrame, HEADER_SIZE } from "../src/protocol/frame.ts";
import { WebSocketError, WsCloseCode } from "../src/transport/websocket_codec.ts";
import { decodeGoimMessage } from "../src/transport/ws_batch.ts";

Deno.test("decodeGoimMessage reads the one frame of a message, its body a view", () => {
  const message = encodeFrame(4, -7, new Uint8Array([1, 2, 3]), 2);
  const frame = decodeGoimMessage(message);
  assert.deepEqual(
    { ver: frame.ver, op: frame.op, seq: frame.seq, body: [...frame.body] },
    { ver: 2, op: 4, seq: -7, body: [1, 2, 3] },
  );
  assert.equal(frame.body.buffer, message.buffer);
  assert.equal(decodeGoimMessage(encodeFrame(2, 1)).body.length, 0);
});

Deno.test("decodeGoimMessage refuses anything but exactly one frame with close code 1002", () => {
  const one = encodeFrame(4, 1, new Uint8Array(8));
  const two = new Uint8Array(one.length * 2);
  two.set(one);
  two.set(one, one.length);
  const badHeader = one.slice();
  badHeader[5] = 17; // headerLen 17
  for (const message of [new Uint8Array(0), one.subarray(0, HEADER_SIZE - 1), two, badHeader]) {
    assert.throws(
      () => decodeGoimMessage(message),
      (err) =>
        err instanceof WebSocketError && err.code === WsCloseCode.ProtocolError &&
        err.message.startsWith("Message is not one goim frame: "),
    );
  }
});
