import assert from "node:assert/strict";
import { FrameDecoder } from "../src/protocol/decoder.ts";
import { HEADER_SIZE } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { ProtocolError } from "../src/protocol/protocol_error.ts";
import {
  decodeStreamPush,
  encodeStreamPush,
  MAX_OFFSET,
  STREAM_PUSH_PREFIX,
  StreamKind,
  streamPushEpoch,
  streamPushOffset,
} from "../src/protocol/stream_push.ts";

const hi = new TextEncoder().encode("hi");

Deno.test("an op-18 frame decodes to what was encoded", () => {
  for (
    const [kind, epoch, offset, op] of [
      [StreamKind.Room, 1, 1, 1000],
      [StreamKind.Mid, 0xffffffff, MAX_OFFSET, -1],
      [StreamKind.All, 305419896, 0x1_0000_0001, 0x7fffffff],
    ] as const
  ) {
    const frame = encodeStreamPush(kind, epoch, offset, op, hi);
    assert.equal(frame.length, HEADER_SIZE + STREAM_PUSH_PREFIX + hi.length);
    const push = decodeStreamPush(frame.subarray(HEADER_SIZE));
    assert.deepEqual({ ...push, body: [...push.body] }, { kind, epoch, offset, op, body: [...hi] });
    assert.equal(streamPushOffset(frame), offset);
    assert.equal(streamPushEpoch(frame), epoch);
  }
});

Deno.test("an op-18 frame has op 18, seq 0 and version 1", () => {
  const [frame] = [...new FrameDecoder({ maxBody: 1024 }).decode(
    encodeStreamPush(StreamKind.Room, 7, 3, 1000, hi),
  )];
  assert.deepEqual([frame!.op, frame!.seq, frame!.ver], [Op.StreamPush, 0, 1]);
});

Deno.test("encoding refuses fields that do not fit", () => {
  const bad: [number, number, number, number][] = [
    [0, 1, 1, 1000],
    [4, 1, 1, 1000],
    [1, 0, 1, 1000],
    [1, 2 ** 32, 1, 1000],
    [1, 1, 0, 1000],
    [1, 1, MAX_OFFSET + 1, 1000],
    [1, 1, 1.5, 1000],
    [1, 1, 1, 2 ** 31],
  ];
  for (const [kind, epoch, offset, op] of bad) {
    assert.throws(
      () => encodeStreamPush(kind as 1, epoch, offset, op, hi),
      RangeError,
      `${kind} ${epoch} ${offset} ${op}`,
    );
  }
});

Deno.test("decoding refuses a short body, an unknown kind and an offset past 2^53 - 1", () => {
  assert.throws(() => decodeStreamPush(new Uint8Array(16)), ProtocolError);
  const body = encodeStreamPush(StreamKind.All, 1, 1, 1000, hi).slice(HEADER_SIZE);
  body[0] = 9;
  assert.throws(() => decodeStreamPush(body), /unknown kind/);
  body[0] = StreamKind.All;
  body[5] = 0x00;
  body[6] = 0x20; // high word 0x200000: 2^53
  assert.throws(() => decodeStreamPush(body), /past 2\^53/);
});
