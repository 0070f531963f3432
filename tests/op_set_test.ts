import assert from "node:assert/strict";
import { opSetAdd, opSetList, opSetRemove, opSetSize } from "../src/server/op_set.ts";

Deno.test("op set: one op is kept as a number, several as a Set, and back", () => {
  let set = opSetAdd(undefined, [1000]);
  assert.equal(set, 1000);
  set = opSetAdd(set, [1000]);
  assert.equal(set, 1000, "adding the same op keeps a number");
  set = opSetAdd(set, [1001, 1002]);
  assert.ok(set instanceof Set);
  assert.equal(opSetSize(set), 3);
  set = opSetRemove(set, [1000, 1001]);
  assert.equal(set, 1002, "a Set left with one op becomes that op");
  set = opSetRemove(set, [1002]);
  assert.equal(set, undefined);
  assert.deepEqual(opSetList(set), []);
  assert.equal(opSetSize(set), 0);
});
