// The protocol's operation table and the ops a push may not carry.
import assert from "node:assert/strict";
import { isReplyOp, isReservedOp, Op, RESERVED_OPS } from "../src/protocol/op.ts";

Deno.test("every op of the protocol's table is reserved, goim's 0 to 17 and Comet's op 18", () => {
  assert.deepEqual(RESERVED_OPS, { min: 0, max: 18 });
  for (const [name, op] of Object.entries(Op)) assert.ok(isReservedOp(op), name);
  for (let op = RESERVED_OPS.min; op <= RESERVED_OPS.max; op++) {
    assert.ok(isReservedOp(op), `${op}`);
  }
});

Deno.test("ops outside 0 to 18 are the application's, negative and 19 to 999 included", () => {
  for (const op of [19, 999, 1000, 0x7fffffff, -1, -0x80000000]) {
    assert.equal(isReservedOp(op), false, `${op}`);
  }
  assert.equal(isReservedOp(-0), true, "-0 is op 0 on the wire");
});

Deno.test("reply ops are reserved ops", () => {
  for (let op = -5; op < 1100; op++) if (isReplyOp(op)) assert.ok(isReservedOp(op), `${op}`);
});
