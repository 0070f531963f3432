// How a push leaving one node of a Redis cluster is split among the other nodes, from what
// the registry answered.
import assert from "node:assert/strict";
import { keysByNode, midsByNode } from "../src/cluster/push_router.ts";

const utf8 = new TextEncoder();

Deno.test("keys go to the node holding each, leaving out this node and unknown keys", () => {
  const owners = [utf8.encode("n2"), null, utf8.encode("n1"), utf8.encode("n3"), utf8.encode("n2")];
  const byNode = keysByNode(["a", "b", "c", "d", "e"], owners, "n1");
  assert.deepEqual([...byNode], [["n2", ["a", "e"]], ["n3", ["d"]]]);
});

Deno.test("keys: a reply that is not an array routes nothing", () => {
  assert.equal(keysByNode(["a"], null, "n1").size, 0);
});

Deno.test("users go once to each node holding any of their devices, not to this node", () => {
  const [k1, k2, k3, n1, n2, n3] = ["k1", "k2", "k3", "n1", "n2", "n3"].map((s) => utf8.encode(s));
  const devices = [
    [k1!, n2!, k2!, n2!, k3!, n1!], // user 7: two devices on n2, one here
    [], // user 8: no devices
    [k1!, n3!], // user 9: one on n3
    null, // user 10: not an array
    [k2!, n2!], // user 11: one on n2
  ];
  const byNode = midsByNode([7, 8, 9, 10, 11], devices, "n1");
  assert.deepEqual([...byNode], [["n2", [7, 11]], ["n3", [9]]]);
});
