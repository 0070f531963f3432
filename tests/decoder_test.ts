import assert from "node:assert/strict";
import { FrameDecoder } from "../src/protocol/decoder.ts";
import { DEFAULT_MAX_BODY, encodeFrame, type Frame, HEADER_SIZE } from "../src/protocol/frame.ts";
import { ProtocolError } from "../src/protocol/protocol_error.ts";
import { mulberry32, randomInt as int } from "./_random.ts";
import { concat } from "./_bytes.ts";

// ---------------------------------------------------------------------------
// Helpers

/** Fixed seeds, plus one per run; the seed is in every assertion message. */
const SEEDS = [1, 42, 0xc0ffee, 2024, (Date.now() ^ 0x5eed) >>> 0];

function randomBody(rand: () => number, maxBody: number): Uint8Array {
  const r = rand();
  const len = r < 0.05
    ? (rand() < 0.5 ? 0 : maxBody)
    : r < 0.45
    ? int(rand, 0, Math.min(16, maxBody))
    : r < 0.85
    ? int(rand, 0, Math.min(256, maxBody))
    : int(rand, 0, maxBody);
  const body = new Uint8Array(len);
  for (let i = 0; i < len; i++) body[i] = (rand() * 256) | 0;
  return body;
}

function randomFrame(rand: () => number, maxBody: number): Frame {
  const wide = rand() < 0.3;
  return {
    ver: wide ? int(rand, -0x8000, 0x7fff) : 1,
    op: wide ? int(rand, -0x80000000, 0x7fffffff) : int(rand, 0, 1002),
    seq: wide ? int(rand, -0x80000000, 0x7fffffff) : int(rand, 0, 1000),
    body: randomBody(rand, maxBody),
  };
}

function encodeAll(frames: readonly Frame[]): Uint8Array {
  return concat(frames.map((f) => encodeFrame(f.op, f.seq, f.body, f.ver)));
}

/** Describes how `got` differs from `want`, or returns "" when equal. */
function frameDiff(got: Frame, want: Frame): string {
  if (got.op !== want.op) return `op ${got.op} != ${want.op}`;
  if (got.seq !== want.seq) return `seq ${got.seq} != ${want.seq}`;
  if (got.ver !== want.ver) return `ver ${got.ver} != ${want.ver}`;
  if (!(got.body instanceof Uint8Array)) return "body is not a Uint8Array";
  if (got.body.length !== want.body.length) {
    return `body length ${got.body.length} != ${want.body.length}`;
  }
  for (let i = 0; i < got.body.length; i++) {
    if (got.body[i] !== want.body[i]) return `body byte ${i}: ${got.body[i]} != ${want.body[i]}`;
  }
  return "";
}

function assertFrames(got: readonly Frame[], want: readonly Frame[], context: string): void {
  for (let i = 0; i < Math.min(got.length, want.length); i++) {
    const diff = frameDiff(got[i]!, want[i]!);
    if (diff) assert.fail(`${context}: frame ${i}: ${diff}`);
  }
  assert.equal(got.length, want.length, `${context}: frame count`);
}

/** Splits `length` bytes into chunk sizes with `size()`. */
function chunkSizes(length: number, size: () => number): number[] {
  const sizes: number[] = [];
  for (let at = 0; at < length;) {
    const n = Math.max(1, Math.min(size(), length - at));
    sizes.push(n);
    at += n;
  }
  return sizes;
}

/**
 * Feeds `stream` as a socket would: each chunk is copied into ONE reused read
 * buffer, pushed, drained until `next()` returns undefined, then the buffer is
 * scribbled over before the next read. Frames must survive that.
 */
function feedReused(decoder: FrameDecoder, stream: Uint8Array, sizes: number[]): Frame[] {
  const readBuf = new Uint8Array(sizes.reduce((a, b) => Math.max(a, b), 1));
  const out: Frame[] = [];
  let at = 0;
  for (const n of sizes) {
    readBuf.set(stream.subarray(at, at + n));
    at += n;
    decoder.push(readBuf.subarray(0, n));
    for (let f = decoder.next(); f; f = decoder.next()) out.push(f);
    readBuf.fill(0xee);
  }
  return out;
}

/** Reference (non-streaming) parse of a whole stream: frames, then an error or a tail. */
function referenceParse(
  stream: Uint8Array,
  maxBody: number,
): { frames: Frame[]; error: boolean; rest: number } {
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  const frames: Frame[] = [];
  let at = 0;
  while (stream.length - at >= HEADER_SIZE) {
    const packLen = view.getInt32(at);
    const headerLen = view.getInt16(at + 4);
    if (headerLen !== HEADER_SIZE || packLen < HEADER_SIZE || packLen - HEADER_SIZE > maxBody) {
      return { frames, error: true, rest: 0 };
    }
    if (stream.length - at < packLen) break;
    frames.push({
      ver: view.getInt16(at + 6),
      op: view.getInt32(at + 8),
      seq: view.getInt32(at + 12),
      body: stream.slice(at + HEADER_SIZE, at + packLen),
    });
    at += packLen;
  }
  return { frames, error: false, rest: stream.length - at };
}

// ---------------------------------------------------------------------------
// Round trips

Deno.test("decoder yields many random frames in order under random chunkings", () => {
  let total = 0;
  for (const seed of SEEDS) {
    const rand = mulberry32(seed);
    const maxBody = seed % 2 === 0 ? DEFAULT_MAX_BODY : int(rand, 1, 2000);
    const frames: Frame[] = [];
    for (let i = 0; i < 600; i++) frames.push(randomFrame(rand, maxBody));
    const stream = encodeAll(frames);
    const strategies: Record<string, () => number> = {
      "all at once": () => stream.length,
      "byte by byte": () => 1,
      "header-sized": () => int(rand, 1, HEADER_SIZE + 4),
      "random small": () => int(rand, 1, 64),
      "random medium": () => int(rand, 1, 3 * maxBody),
      "many frames in one chunk": () => int(rand, 4 * maxBody, 40 * maxBody),
      "mixed": () => rand() < 0.5 ? int(rand, 1, 20) : int(rand, 1, 20_000),
    };
    for (const [name, size] of Object.entries(strategies)) {
      const decoder = new FrameDecoder({ maxBody });
      const got = feedReused(decoder, stream, chunkSizes(stream.length, size));
      const context = `seed ${seed}, maxBody ${maxBody}, ${name}`;
      assertFrames(got, frames, context);
      assert.equal(decoder.buffered, 0, `${context}: buffered`);
      assert.equal(decoder.next(), undefined, `${context}: drained`);
      total += got.length;
    }
  }
  assert.ok(total >= 3000);
});

Deno.test("decoder yields frames split byte by byte", () => {
  const frames = [
    { ver: 1, op: 7, seq: 1, body: new TextEncoder().encode('{"mid":1,"key":"k"}') },
    { ver: 1, op: 2, seq: 2, body: new Uint8Array(0) },
    { ver: 1, op: 1000, seq: 0, body: new Uint8Array(DEFAULT_MAX_BODY).fill(9) },
  ];
  const stream = encodeAll(frames);
  const decoder = new FrameDecoder();
  const got: Frame[] = [];
  // Nothing completes early or late: frame k is out exactly when its last byte is in.
  const ends = frames.map((_, k) => encodeAll(frames.slice(0, k + 1)).length);
  for (let i = 0; i < stream.length; i++) {
    for (const f of decoder.decode(stream.subarray(i, i + 1))) got.push(f);
    assert.equal(got.length, ends.filter((e) => e <= i + 1).length, `after byte ${i}`);
  }
  assertFrames(got, frames, "byte by byte");
  assert.equal(decoder.buffered, 0);
});

Deno.test("decoder decode() yields every frame of one chunk", () => {
  const frames: Frame[] = [];
  for (let i = 0; i < 50; i++) {
    frames.push({ ver: 1, op: 1000 + i, seq: i, body: new Uint8Array(i) });
  }
  const decoder = new FrameDecoder();
  assertFrames([...decoder.decode(encodeAll(frames))], frames, "decode");
  assert.deepEqual([...decoder.decode(new Uint8Array(0))], []);
});

Deno.test("decoder returns undefined before any bytes and tracks buffered bytes", () => {
  const decoder = new FrameDecoder();
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.buffered, 0);
  const bytes = encodeFrame(1000, 3, new Uint8Array([1, 2, 3, 4]));
  decoder.push(bytes.subarray(0, 5));
  assert.equal(decoder.buffered, 5);
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.buffered, 5);
  decoder.push(bytes.subarray(5, 18));
  assert.equal(decoder.buffered, 18);
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.buffered, 18);
  decoder.push(bytes.subarray(18));
  const f = decoder.next();
  assert.ok(f);
  assert.deepEqual({ ...f, body: [...f.body] }, { ver: 1, op: 1000, seq: 3, body: [1, 2, 3, 4] });
  assert.equal(decoder.buffered, 0);
  assert.equal(decoder.next(), undefined);
});

Deno.test("decoder keeps older bytes when pushed again before draining", () => {
  const rand = mulberry32(7);
  const frames: Frame[] = [];
  for (let i = 0; i < 300; i++) frames.push(randomFrame(rand, 300));
  const stream = encodeAll(frames);
  const decoder = new FrameDecoder({ maxBody: 300 });
  const got: Frame[] = [];
  const pushed: Uint8Array[] = [];
  let at = 0;
  while (at < stream.length) {
    // One to four distinct chunks before draining: each must be kept in order.
    for (let k = int(rand, 1, 4); k > 0 && at < stream.length; k--) {
      const n = Math.min(int(rand, 1, 700), stream.length - at);
      const chunk = stream.slice(at, at + n);
      at += n;
      decoder.push(chunk);
      pushed.push(chunk);
      // Sometimes take a single frame between pushes, leaving the rest queued.
      if (rand() < 0.3) {
        const f = decoder.next();
        if (f) got.push(f);
      }
    }
    for (let f = decoder.next(); f; f = decoder.next()) got.push(f);
    // Drained: every pushed chunk may now be reused.
    for (const c of pushed) c.fill(0xee);
    pushed.length = 0;
  }
  assertFrames(got, frames, "push without draining (seed 7)");
  assert.equal(decoder.buffered, 0);
});

Deno.test("decoder copies leftovers so a reused read buffer does not corrupt later frames", () => {
  const a = encodeFrame(1000, 1, new Uint8Array(100).fill(0xa1));
  const b = encodeFrame(1001, 2, new Uint8Array(50).fill(0xb2));
  const c = encodeFrame(1002, 3, new Uint8Array(0));
  const stream = concat([a, b, c]);
  // Split inside b's header, then inside b's body, then inside c's header.
  const cuts = [a.length + 7, a.length + 40, a.length + b.length + 3, stream.length];
  const readBuf = new Uint8Array(4096);
  const decoder = new FrameDecoder();
  const got: Frame[] = [];
  let at = 0;
  for (const cut of cuts) {
    readBuf.set(stream.subarray(at, cut));
    decoder.push(readBuf.subarray(0, cut - at));
    at = cut;
    for (let f = decoder.next(); f; f = decoder.next()) got.push(f);
    // The socket reads into the same buffer again: overwrite everything.
    readBuf.fill(0xff);
  }
  assert.equal(got.length, 3);
  assert.equal(got[0]!.op, 1000);
  assert.ok(got[0]!.body.every((x) => x === 0xa1));
  assert.equal(got[1]!.op, 1001);
  assert.equal(got[1]!.seq, 2);
  assert.equal(got[1]!.body.length, 50);
  assert.ok(got[1]!.body.every((x) => x === 0xb2));
  assert.equal(got[2]!.op, 1002);
  assert.equal(got[2]!.body.length, 0);
});

Deno.test("decoder frame bodies are copies, not views of the pushed chunk", () => {
  const chunk = concat([
    encodeFrame(1000, 1, new Uint8Array([1, 2, 3])),
    encodeFrame(1001, 2, new Uint8Array([4, 5])),
  ]);
  const decoder = new FrameDecoder();
  const frames = [...decoder.decode(chunk)];
  chunk.fill(0);
  assert.deepEqual([...frames[0]!.body], [1, 2, 3]);
  assert.deepEqual([...frames[1]!.body], [4, 5]);
});

// ---------------------------------------------------------------------------
// Limits and malformed input

function header(packLen: number, headerLen = HEADER_SIZE, op = 1000): Uint8Array {
  const h = new Uint8Array(HEADER_SIZE);
  const v = new DataView(h.buffer);
  v.setInt32(0, packLen);
  v.setInt16(4, headerLen);
  v.setInt16(6, 1);
  v.setInt32(8, op);
  v.setInt32(12, 0);
  return h;
}

/** Asserts the decoder fails on its next call, then keeps failing with the same error. */
function assertFails(decoder: FrameDecoder, context: string): ProtocolError {
  let first: unknown;
  try {
    decoder.next();
  } catch (err) {
    first = err;
  }
  assert.ok(first instanceof ProtocolError, `${context}: expected ProtocolError, got ${first}`);
  assert.equal(first.name, "ProtocolError");
  assert.throws(() => decoder.next(), (e) => e === first, `${context}: again`);
  assert.equal(decoder.buffered, 0, `${context}: a failed decoder holds nothing`);
  decoder.push(encodeFrame(2, 1));
  assert.throws(() => decoder.next(), (e) => e === first, `${context}: after a good push`);
  assert.throws(() => [...decoder.decode(encodeFrame(2, 1))], (e) => e === first);
  assert.equal(decoder.buffered, 0, `${context}: pushes after failing are ignored`);
  return first;
}

Deno.test("decoder rejects packLen below the header size", () => {
  for (const packLen of [0, 1, 15, -1, -0x80000000]) {
    const decoder = new FrameDecoder();
    decoder.push(header(packLen));
    assertFails(decoder, `packLen ${packLen}`);
  }
});

Deno.test("decoder rejects headerLen other than 16", () => {
  for (const headerLen of [0, 15, 17, 32, -1, 0x7fff]) {
    const decoder = new FrameDecoder();
    decoder.push(concat([header(20, headerLen), new Uint8Array(4)]));
    assertFails(decoder, `headerLen ${headerLen}`);
  }
});

Deno.test("decoder rejects a body over the default 4096 bytes as soon as the header is in", () => {
  const decoder = new FrameDecoder();
  // Only the header: the limit is enforced before the body is buffered.
  decoder.push(header(HEADER_SIZE + DEFAULT_MAX_BODY + 1));
  const err = assertFails(decoder, "4097");
  assert.match(err.message, /4096/);
  const huge = new FrameDecoder();
  huge.push(header(0x7fffffff));
  assertFails(huge, "int32 max");
});

Deno.test("decoder accepts a frame exactly at maxBody", () => {
  const body = new Uint8Array(DEFAULT_MAX_BODY).map((_, i) => i & 0xff);
  const decoder = new FrameDecoder();
  const [frame] = [...decoder.decode(encodeFrame(1000, 9, body))];
  assert.ok(frame);
  assert.equal(frame.body.length, DEFAULT_MAX_BODY);
  assert.deepEqual(frame.body, body);
});

Deno.test("decoder honours a custom maxBody", () => {
  const decoder = new FrameDecoder({ maxBody: 10 });
  const frames = [...decoder.decode(encodeFrame(1000, 1, new Uint8Array(10)))];
  assert.equal(frames.length, 1);
  decoder.push(encodeFrame(1000, 2, new Uint8Array(11)));
  assertFails(decoder, "maxBody 10, body 11");

  const zero = new FrameDecoder({ maxBody: 0 });
  assert.equal([...zero.decode(encodeFrame(2, 1))].length, 1);
  zero.push(encodeFrame(2, 2, new Uint8Array(1)));
  assertFails(zero, "maxBody 0, body 1");

  const big = new FrameDecoder({ maxBody: 100_000 });
  const body = new Uint8Array(100_000).fill(3);
  const [f] = [...big.decode(encodeFrame(1000, 1, body))];
  assert.equal(f?.body.length, 100_000);
});

Deno.test("decoder constructor throws RangeError for a bad maxBody", () => {
  for (const maxBody of [-1, 1.5, NaN, Infinity, 0x7fffffff, 2 ** 53]) {
    assert.throws(() => new FrameDecoder({ maxBody }), RangeError, `maxBody ${maxBody}`);
  }
  new FrameDecoder({ maxBody: 0x7fffffff - HEADER_SIZE });
});

Deno.test("decoder yields the good frames before an error, then fails", () => {
  const decoder = new FrameDecoder();
  decoder.push(concat([encodeFrame(1000, 1), encodeFrame(1001, 2), header(8)]));
  assert.equal(decoder.next()?.op, 1000);
  assert.equal(decoder.next()?.op, 1001);
  assertFails(decoder, "after two good frames");
});

Deno.test("decoder detects a bad header split across pushes", () => {
  const bad = concat([encodeFrame(7, 1), header(20, 12), new Uint8Array(4)]);
  for (let cut = 1; cut < bad.length; cut++) {
    const decoder = new FrameDecoder();
    const got: Frame[] = [];
    let error: unknown;
    try {
      for (const f of decoder.decode(bad.slice(0, cut))) got.push(f);
      for (const f of decoder.decode(bad.slice(cut))) got.push(f);
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof ProtocolError, `cut ${cut}`);
    assert.equal(got.length, 1, `cut ${cut}`);
  }
});

Deno.test("decoder never throws anything but ProtocolError on random garbage and mutations", () => {
  let failures = 0;
  let clean = 0;
  for (const seed of SEEDS) {
    const rand = mulberry32(seed ^ 0xbad);
    for (let round = 0; round < 120; round++) {
      const maxBody = rand() < 0.5 ? DEFAULT_MAX_BODY : int(rand, 0, 300);
      let stream: Uint8Array;
      const kind = round % 3;
      if (kind === 0) {
        // Pure garbage, sometimes with a plausible header up front.
        stream = new Uint8Array(int(rand, 0, 3000)).map(() => (rand() * 256) | 0);
        if (rand() < 0.5 && stream.length >= HEADER_SIZE) {
          stream.set(header(int(rand, -5, maxBody + 40), rand() < 0.8 ? 16 : int(rand, 0, 40)));
        }
      } else {
        // A valid stream with a few random mutations.
        const frames: Frame[] = [];
        for (let i = int(rand, 1, 30); i > 0; i--) frames.push(randomFrame(rand, maxBody));
        const valid = encodeAll(frames);
        const bytes = [...valid];
        for (let m = int(rand, 1, 4); m > 0; m--) {
          const at = int(rand, 0, Math.max(0, bytes.length - 1));
          const r = rand();
          if (r < 0.4) bytes[at] = (rand() * 256) | 0; // overwrite
          else if (r < 0.6) bytes[at] = (bytes[at] ?? 0) ^ (1 << int(rand, 0, 7)); // flip a bit
          else if (r < 0.75) bytes.splice(at, int(rand, 1, 20)); // delete
          else if (r < 0.9) bytes.splice(at, 0, (rand() * 256) | 0); // insert
          else bytes.length = at; // truncate
        }
        stream = new Uint8Array(bytes);
      }
      const want = referenceParse(stream, maxBody);
      const decoder = new FrameDecoder({ maxBody });
      const sizes = chunkSizes(
        stream.length,
        () => rand() < 0.3 ? int(rand, 1, 4) : int(rand, 1, 500),
      );
      const context = `seed ${seed}, round ${round}, maxBody ${maxBody}`;
      const got: Frame[] = [];
      let error: unknown;
      const readBuf = new Uint8Array(512);
      try {
        let at = 0;
        for (const n of sizes) {
          readBuf.set(stream.subarray(at, at + n));
          at += n;
          decoder.push(readBuf.subarray(0, n));
          for (let f = decoder.next(); f; f = decoder.next()) got.push(f);
          readBuf.fill(0xee);
        }
      } catch (err) {
        error = err;
      }
      if (error !== undefined) {
        assert.ok(
          error instanceof ProtocolError,
          `${context}: threw a non-ProtocolError: ${error}`,
        );
        assert.throws(() => decoder.next(), (e) => e === error, `${context}: stays failed`);
        decoder.push(encodeFrame(2, 1));
        assert.throws(() => decoder.next(), (e) => e === error, `${context}: after a push`);
        failures++;
      } else {
        assert.equal(decoder.buffered, want.rest, `${context}: buffered tail`);
        clean++;
      }
      assert.equal(error !== undefined, want.error, `${context}: error agrees with reference`);
      assertFrames(got, want.frames, context);
    }
  }
  // The generator must exercise both outcomes.
  assert.ok(failures > 50, `failures ${failures}`);
  assert.ok(clean > 50, `clean ${clean}`);
});
