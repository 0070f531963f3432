// Shared by the WebSocket backpressure tests (ws_backpressure_test.ts, socket_wire_test.ts):
// numbered 64 KiB pushes to one room, a raw client that stops reading, and the push loop.
import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import type { Comet } from "../src/server/comet.ts";
import { until, utf8 } from "./_helpers.ts";
import { type GoimFrame, goimMessages, Opcode, WsClient } from "./_ws_client.ts";

export const ROOM = "live://bp";
export const BODY_SIZE = 64 * 1024;
/** Upper bound on pushes: far more than loopback socket buffers hold. */
export const MAX_PUSHES = 4000;

/** A 64 KiB body whose first four bytes are `index`. */
export function body(index: number): Uint8Array {
  const b = new Uint8Array(BODY_SIZE);
  new DataView(b.buffer).setInt32(0, index);
  b.fill(index & 0xff, 4);
  return b;
}

/** The index a pushed body carries, after checking it is whole. */
export function indexOf(frame: GoimFrame): number {
  assert.equal(frame.op, 1000);
  assert.equal(frame.body.length, BODY_SIZE);
  const index = new DataView(frame.body.buffer, frame.body.byteOffset, 4).getInt32(0);
  assert.equal(frame.body[BODY_SIZE - 1], index & 0xff);
  return index;
}

/** Connects a raw client over TCP to `port` and authenticates it as `key` in the room. */
export async function stalledClient(port: number, key: string): Promise<WsClient> {
  const ws = await WsClient.connect(await Deno.connect({ hostname: "127.0.0.1", port }));
  await ws.send(encodeFrame(Op.Auth, 1, utf8.encode(`{"key":"${key}","room_id":"${ROOM}"}`)));
  const m = await ws.next();
  assert.equal(m?.opcode, Opcode.Binary);
  assert.equal(goimMessages(m!.payload)[0]?.op, Op.AuthReply);
  return ws;
}

/**
 * Pushes numbered bodies to the room one at a time, each once the reader has it (its
 * `indices` grow), until `done()`; returns how many were pushed.
 */
export async function pushUntil(
  comet: Comet,
  indices: number[],
  done: () => boolean,
): Promise<number> {
  let i = 0;
  for (; i < MAX_PUSHES && !done(); i++) {
    assert.ok(comet.pushRoom(ROOM, 1000, body(i)) >= 1, `push ${i} reached the reader`);
    assert.ok(await until(() => indices.length === i + 1), `reader got push ${i}`);
  }
  assert.ok(done(), `still not done after ${i} pushes of ${BODY_SIZE} bytes`);
  return i;
}

/** `[0, 1, …, n - 1]`. */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
