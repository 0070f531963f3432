// The names a Redis cluster keeps its registry, reports and channels under.
import assert from "node:assert/strict";
import { RedisKeys } from "../src/cluster/redis_keys.ts";

Deno.test("every key and channel name starts with the prefix and says what it holds", () => {
  const keys = new RedisKeys("comet:");
  assert.equal(keys.key("k1"), "comet:key:k1");
  assert.equal(keys.mid(42), "comet:mid:42");
  assert.equal(keys.room("live://1"), "comet:room:live://1");
  assert.equal(keys.online("n1"), "comet:online:n1");
  assert.equal(keys.node("n1"), "comet:node:n1");
  assert.equal(keys.nodes, "comet:nodes");
  assert.equal(keys.all, "comet:all");
});

Deno.test("two clusters with other prefixes share no name", () => {
  const a = new RedisKeys("a:");
  const b = new RedisKeys("b:");
  assert.notEqual(a.key("k"), b.key("k"));
  assert.notEqual(a.all, b.all);
  assert.equal(new RedisKeys("").room("r"), "room:r");
});
