import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { TcpWire } from "../src/transport/tcp.ts";

/** A loopback pair: the client socket and a TcpWire over the accepted one. */
async function pair(): Promise<{ client: Deno.TcpConn; wire: TcpWire } & Disposable> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const wire = new TcpWire(await listener.accept());
  return {
    client,
    wire,
    [Symbol.dispose]() {
      wire.close();
      try {
        client.close();
      } catch {
        // Closed by the test.
      }
    },
  };
}

Deno.test("TCP wire gives its read buffer back once closed, not while its read is pending", async () => {
  const pool = TcpWire.readBuffers;
  const before = pool.used;
  using p = await pair();
  const read = p.wire.read();
  assert.equal(pool.used, before + 1, "the pending read holds a buffer");
  p.wire.close();
  assert.equal(pool.used, before + 1, "the runtime may still write into it");
  assert.equal(await read, null);
  assert.equal(pool.used, before);
});

Deno.test("TCP wire gives its read buffer back when the peer leaves", async () => {
  const pool = TcpWire.readBuffers;
  const before = pool.used;
  using p = await pair();
  const read = p.wire.read();
  p.client.close();
  assert.equal(await read, null);
  assert.equal(pool.used, before);
  p.wire.close();
  assert.equal(pool.used, before, "given back once only");
});

Deno.test("TCP wires reusing a read buffer keep each other's frames apart", async () => {
  const body = (n: number, fill: number) => new Uint8Array(n).fill(fill);
  using a = await pair();
  // A frame split across reads leaves part of it with A when A closes.
  const half = encodeFrame(Op.SendMsg, 1, body(700, 1));
  await a.client.write(half.subarray(0, 600));
  const pending = a.wire.read();
  await new Promise((r) => setTimeout(r, 20));
  a.wire.close();
  assert.equal(await pending, null);
  using b = await pair();
  using c = await pair();
  const frames = [encodeFrame(Op.SendMsg, 2, body(900, 2)), encodeFrame(Op.SendMsg, 3, body(5, 3))];
  await b.client.write(frames[0]!);
  await c.client.write(frames[1]!);
  const [fb, fc] = await Promise.all([b.wire.read(), c.wire.read()]);
  assert.equal(fb?.seq, 2);
  assert.deepEqual(fb?.body, body(900, 2));
  assert.equal(fc?.seq, 3);
  assert.deepEqual(fc?.body, body(5, 3));
});
