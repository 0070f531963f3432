// Envelope stamps: the place of a push in its stream travels in the header, and envelopes
// without stamps (older nodes, streams off) decode as before.
import assert from "node:assert/strict";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "../src/cluster/envelope.ts";
import { ProtocolError } from "../src/protocol/protocol_error.ts";

const body = new TextEncoder().encode("hi");

Deno.test("envelope: stamps and the sender's number round-trip for rooms, users and all", () => {
  const envelopes: Envelope[] = [
    {
      kind: "room",
      from: "n1",
      op: 1000,
      room: "r",
      body,
      stamp: { epoch: 7, offset: 2 },
      id: 3,
    },
    {
      kind: "all",
      from: "n1",
      op: 1000,
      speed: 0,
      body,
      stamp: { epoch: 0xffffffff, offset: 1 },
    },
    {
      kind: "mids",
      from: "n2",
      op: 1000,
      mids: [7, 8],
      body,
      stamps: [{ epoch: 1, offset: 2 ** 40 }, undefined],
    },
  ];
  for (const envelope of envelopes) {
    assert.deepEqual(decodeEnvelope(encodeEnvelope(envelope)), envelope);
  }
});

Deno.test("envelope: one without stamps decodes without them", () => {
  const decoded = decodeEnvelope(
    encodeEnvelope({ kind: "room", from: "n", op: 1, room: "r", body }),
  );
  assert.equal("stamp" in decoded, false);
  assert.equal("id" in decoded, false);
});

Deno.test("envelope: stamps that are no stamps are refused", () => {
  const header = (fields: Record<string, unknown>) => {
    const json = new TextEncoder().encode(JSON.stringify(fields));
    const out = new Uint8Array(10 + json.length);
    out[0] = 1;
    out[1] = fields.to === undefined ? 4 : Array.isArray(fields.to) ? 2 : 3;
    new DataView(out.buffer).setUint32(6, json.length);
    out.set(json, 10);
    return out;
  };
  for (
    const fields of [
      { from: "n", to: "r", stamp: [0, 1] },
      { from: "n", to: "r", stamp: [1, 0] },
      { from: "n", to: "r", stamp: [2 ** 32, 1] },
      { from: "n", to: "r", stamp: "1:1" },
      { from: "n", speed: 0, stamp: [1] },
      { from: "n", to: [1, 2], stamps: [[1, 1]] },
      { from: "n", to: [1], stamps: [[1, 1.5]] },
      { from: "n", to: "r", id: "x" },
    ]
  ) {
    assert.throws(() => decodeEnvelope(header(fields)), ProtocolError, JSON.stringify(fields));
  }
  // What the Redis script writes, by hand: a null for a user without a stamp.
  const ok = decodeEnvelope(header({ from: "n", to: [1, 2], stamps: [null, [5, 6]], id: 4 }));
  assert.deepEqual(ok.kind === "mids" && [ok.stamps, ok.id], [
    [undefined, { epoch: 5, offset: 6 }],
    4,
  ]);
});
