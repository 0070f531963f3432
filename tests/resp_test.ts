import assert from "node:assert/strict";
import {
  encodeCommand,
  RedisError,
  type RedisReply,
  replyText,
  RespParser,
} from "../src/cluster/resp.ts";
import { ProtocolError } from "../src/protocol/protocol_error.ts";
import { mulberry32 as prng } from "./_random.ts";

const utf8 = new TextEncoder();
const bytes = (text: string) => utf8.encode(text);
const ascii = (data: Uint8Array) => new TextDecoder().decode(data);

function parseAll(parser: RespParser, ...chunks: (string | Uint8Array)[]): RedisReply[] {
  const out: RedisReply[] = [];
  for (const chunk of chunks) {
    out.push(...parser.parse(typeof chunk === "string" ? bytes(chunk) : chunk));
  }
  return out;
}

Deno.test("encodeCommand writes an array of bulk strings", () => {
  assert.equal(
    ascii(encodeCommand(["SET", "key", "value"])),
    "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
  );
  assert.equal(ascii(encodeCommand(["PING"])), "*1\r\n$4\r\nPING\r\n");
  assert.equal(ascii(encodeCommand(["SET", ""])), "*2\r\n$3\r\nSET\r\n$0\r\n\r\n");
});

Deno.test("encodeCommand sends numbers in decimal, strings as UTF-8 and bytes as they are", () => {
  assert.equal(
    ascii(encodeCommand(["INCRBY", "n", -42, 1.5, 12345678901234567890n])),
    "*5\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$3\r\n-42\r\n$3\r\n1.5\r\n$20\r\n12345678901234567890\r\n",
  );
  // Lengths count bytes, not characters.
  assert.equal(ascii(encodeCommand(["é€"])), "*1\r\n$5\r\né€\r\n");
  const binary = new Uint8Array([0, 13, 10, 255]);
  const encoded = encodeCommand(["SET", binary]);
  assert.deepEqual(
    encoded,
    new Uint8Array([...bytes("*2\r\n$3\r\nSET\r\n$4\r\n"), 0, 13, 10, 255, 13, 10]),
  );
});

Deno.test("encodeCommand rejects bad arguments", () => {
  assert.throws(() => encodeCommand([]), RangeError);
  assert.throws(() => encodeCommand(["INCRBY", "n", NaN]), RangeError);
  assert.throws(() => encodeCommand(["ZADD", "z", Infinity, "m"]), RangeError);
  assert.throws(() => encodeCommand(["SET", {} as unknown as string]), TypeError);
  assert.throws(() => encodeCommand(["SET", null as unknown as string]), TypeError);
  assert.throws(() => encodeCommand("PING" as unknown as string[]), TypeError);
});

Deno.test("RespParser parses every RESP2 type", () => {
  const parser = new RespParser();
  const replies = parseAll(
    parser,
    "+OK\r\n",
    "+\r\n",
    "-ERR unknown command\r\n",
    ":0\r\n:-17\r\n:9007199254740991\r\n:9223372036854775807\r\n:-9223372036854775808\r\n",
    "$5\r\nhello\r\n$0\r\n\r\n$-1\r\n",
    "*-1\r\n*0\r\n",
    "*3\r\n:1\r\n*2\r\n$1\r\na\r\n*0\r\n$-1\r\n",
    "*2\r\n-WRONGTYPE bad kind\r\n+QUEUED\r\n",
  );
  assert.deepEqual(replies, [
    "OK",
    "",
    new RedisError("ERR unknown command"),
    0,
    -17,
    9007199254740991,
    9223372036854775807n,
    -9223372036854775808n,
    bytes("hello"),
    new Uint8Array(0),
    null,
    null,
    [],
    [1, [bytes("a"), []], null],
    [new RedisError("WRONGTYPE bad kind"), "QUEUED"],
  ]);
  assert.equal((replies[2] as RedisError).code, "ERR");
  assert.equal((replies[2] as RedisError).name, "RedisError");
  assert.equal(((replies[14] as RedisReply[])[0] as RedisError).code, "WRONGTYPE");
  assert.equal(parser.partial, false);
});

Deno.test("RespParser keeps bulk strings binary, CRLF included", () => {
  const value = new Uint8Array(256).map((_, i) => i);
  const stream = new Uint8Array([...bytes("$256\r\n"), ...value, 13, 10]);
  assert.deepEqual(parseAll(new RespParser(), stream), [value]);
});

Deno.test("RespParser copies out of the chunk, so read buffers can be reused", () => {
  const parser = new RespParser();
  const buffer = bytes("$3\r\nabc\r\n+x");
  const [first] = parseAll(parser, buffer);
  buffer.fill(0);
  assert.deepEqual(first, bytes("abc"));
  assert.deepEqual(parseAll(parser, "\r\n"), ["x"]);
});

Deno.test("RespParser gives the same replies for any chunking of the stream", () => {
  const random = prng(20240607);
  const big = new Uint8Array(100_000).map((_, i) => (i * 7) & 255);
  const expected: RedisReply[] = [];
  const parts: Uint8Array[] = [];
  const add = (wire: string | Uint8Array, reply: RedisReply) => {
    parts.push(typeof wire === "string" ? bytes(wire) : wire);
    expected.push(reply);
  };
  for (let i = 0; i < 200; i++) {
    add(`+simple ${i}\r\n`, `simple ${i}`);
    add(`:${i * 1000 - 7}\r\n`, i * 1000 - 7);
    add(`-ERR number ${i}\r\n`, new RedisError(`ERR number ${i}`));
    add(`$${String(i).length + 2}\r\n\r\n${i}\r\n`, bytes(`\r\n${i}`));
    add("$-1\r\n", null);
    add(`*3\r\n$1\r\n${i % 10}\r\n*1\r\n:${i}\r\n*-1\r\n`, [bytes(`${i % 10}`), [i], null]);
  }
  add(new Uint8Array([...bytes(`$${big.length}\r\n`), ...big, 13, 10]), big);
  const stream = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((offset, p) => (stream.set(p, offset), offset + p.length), 0);

  for (const maxChunk of [1, 2, 3, 7, 64, 4096, stream.length]) {
    for (let round = 0; round < 3; round++) {
      const parser = new RespParser();
      const replies: RedisReply[] = [];
      for (let pos = 0; pos < stream.length;) {
        const size = 1 + Math.floor(random() * maxChunk);
        for (const reply of parser.parse(stream.subarray(pos, pos + size))) replies.push(reply);
        pos += size;
      }
      assert.deepEqual(replies, expected, `chunks of up to ${maxChunk} bytes`);
      assert.equal(parser.partial, false);
    }
  }
});

Deno.test("RespParser keeps unread bytes when the iteration stops early", () => {
  const parser = new RespParser();
  const iterator = parser.parse(bytes(":1\r\n:2\r\n:3"));
  assert.deepEqual(iterator.next(), { value: 1, done: false });
  iterator.return();
  assert.equal(parser.partial, true);
  assert.deepEqual(parseAll(parser, "\r\n"), [2, 3]);
  assert.deepEqual(parseAll(parser, new Uint8Array(0)), []);
});

Deno.test("RespParser reports partial replies", () => {
  const parser = new RespParser();
  assert.equal(parser.partial, false);
  assert.deepEqual(parseAll(parser, "*2\r\n:1\r\n"), []);
  assert.equal(parser.partial, true);
  assert.deepEqual(parseAll(parser, "$2\r\nh"), []);
  assert.equal(parser.partial, true);
  assert.deepEqual(parseAll(parser, "i\r\n"), [[1, bytes("hi")]]);
  assert.equal(parser.partial, false);
});

Deno.test("RespParser throws ProtocolError on malformed input, and keeps throwing", () => {
  const cases: [string, RegExp][] = [
    ["!oops\r\n", /Unknown reply type: "!"/],
    ["%1\r\n", /Unknown reply type: "%"/],
    ["\r\n", /Reply line does not end in CRLF|Unknown reply type/],
    ["+OK\n", /does not end in CRLF/],
    [":12a\r\n", /Integer reply is not an integer: "12a"/],
    [":\r\n", /Integer reply is not an integer/],
    [":123456789012345678901\r\n", /Integer reply is not an integer/],
    ["$abc\r\n", /Bulk string length is not valid: "abc"/],
    ["$-2\r\n", /Bulk string length is not valid: "-2"/],
    ["*x\r\n", /Array length is not valid/],
    ["$3\r\nabcXY", /Bulk string of 3 bytes is not followed by CRLF/],
    ["$3\r\nabc\rX", /not followed by CRLF/],
  ];
  for (const [input, message] of cases) {
    const parser = new RespParser();
    assert.throws(() => parseAll(parser, input), (err: unknown) => {
      assert.ok(err instanceof ProtocolError, `${JSON.stringify(input)}: ${err}`);
      assert.match(err.message, message);
      return true;
    });
    assert.throws(() => parseAll(parser, "+OK\r\n"), ProtocolError);
  }
});

Deno.test("RespParser yields the replies before a malformed one", () => {
  const parser = new RespParser();
  const seen: RedisReply[] = [];
  assert.throws(() => {
    for (const reply of parser.parse(bytes("+a\r\n:2\r\n?\r\n"))) seen.push(reply);
  }, ProtocolError);
  assert.deepEqual(seen, ["a", 2]);
});

Deno.test("RespParser enforces its size limits before the data arrives", () => {
  const parser = new RespParser({ maxBulkLength: 10 });
  assert.deepEqual(parseAll(parser, "$10\r\n0123456789\r\n"), [bytes("0123456789")]);
  assert.throws(
    () => parseAll(parser, "$11\r\n"),
    (err: unknown) =>
      err instanceof ProtocolError && /Bulk string is longer than 10 bytes: 11/.test(err.message),
  );
  // The default limit is Redis's own 512 MiB; a larger header fails without allocating.
  assert.throws(() => parseAll(new RespParser(), `$${512 * 1024 * 1024 + 1}\r\n`), ProtocolError);

  const lines = new RespParser({ maxLineLength: 8 });
  assert.deepEqual(parseAll(lines, "+12345678\r\n"), ["12345678"]);
  assert.throws(() => parseAll(lines, "+123456789\r\n"), /longer than 8 bytes/);
  // A line that never ends fails once it is too long, even when it comes byte by byte.
  const endless = new RespParser({ maxLineLength: 8 });
  assert.throws(() => {
    for (let i = 0; i < 100; i++) parseAll(endless, "x");
  }, /Reply line is longer than 8 bytes/);
});

Deno.test("RespParser checks its options and input", () => {
  assert.throws(() => new RespParser({ maxBulkLength: -1 }), RangeError);
  assert.throws(() => new RespParser({ maxLineLength: 1.5 }), RangeError);
  assert.throws(() => [...new RespParser().parse("x" as unknown as Uint8Array)], TypeError);
});

Deno.test("replyText decodes bulk strings and passes text through", () => {
  assert.equal(replyText(bytes("héllo")), "héllo");
  assert.equal(replyText("OK"), "OK");
  assert.equal(replyText(42), "42");
  assert.equal(replyText(2n ** 64n), "18446744073709551616");
  assert.equal(replyText(null), null);
  assert.throws(() => replyText([bytes("a")]), TypeError);
  assert.throws(() => replyText(new RedisError("ERR x")), TypeError);
});
