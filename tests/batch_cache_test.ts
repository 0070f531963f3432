import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { BatchCache } from "../src/transport/batch_cache.ts";
import { TcpWire } from "../src/transport/tcp.ts";

const frame = (seq: number) => encodeFrame(1000, seq, new TextEncoder().encode(`push ${seq}`));

Deno.test("batch cache hands back the bytes of the same frames in the same order only", () => {
  const cache = new BatchCache();
  const [a, b, c] = [frame(1), frame(2), frame(3)];
  const out = new Uint8Array(3);
  assert.equal(cache.get([a, b], 2), undefined, "empty cache");
  cache.set([a, b], 2, out);
  assert.equal(cache.get([a, b], 2), out);
  assert.equal(cache.get([a, b, c], 2), out, "only the first count chunks count");
  assert.equal(cache.get([b, a], 2), undefined, "order matters");
  assert.equal(cache.get([a, b, c], 3), undefined, "count matters");
  assert.equal(cache.get([a, frame(2)], 2), undefined, "equal bytes are not the same frame");
  cache.set([c], 1, out);
  assert.equal(cache.get([a, b], 2), undefined, "a new batch replaces the old");
});

Deno.test("tcp wires with the same frames queued write the same bytes without a copy each", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const clients = await Promise.all(
    [0, 1].map(() => Deno.connect({ hostname: "127.0.0.1", port })),
  );
  const accepted = [await listener.accept(), await listener.accept()];
  try {
    const [w1, w2] = accepted.map((conn) => new TcpWire(conn));
    const chunks = [frame(1), frame(2), frame(3)];
    const bytes = chunks.reduce((n, f) => n + f.length, 0);
    const one = w1!.encode(chunks, 3, bytes);
    const two = w2!.encode([...chunks], 3, bytes);
    assert.equal(two, one, "the second wire gets the first one's buffer");
    const expected = new Uint8Array(bytes);
    let at = 0;
    for (const f of chunks) {
      expected.set(f, at);
      at += f.length;
    }
    assert.deepEqual(one, expected);
    // Other frames: encoded afresh, and correct.
    const other = w2!.encode([chunks[2]!, chunks[0]!], 2, chunks[2]!.length + chunks[0]!.length);
    assert.notEqual(other, one);
    assert.deepEqual(other.subarray(0, chunks[2]!.length), chunks[2]);
  } finally {
    for (const c of [...clients, ...accepted]) c.close();
    listener.close();
  }
});
