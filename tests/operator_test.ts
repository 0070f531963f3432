import assert from "node:assert/strict";
import { DefaultOperator, parseGoimAuth } from "../src/server/operator.ts";

const utf8 = new TextEncoder();
const auth = (json: string) => parseGoimAuth(utf8.encode(json));

Deno.test("parseGoimAuth reads goim's auth fields into a session", () => {
  assert.deepEqual(
    auth('{"mid":7,"key":"k1","room_id":"live://1","platform":"web","accepts":[1000,1001]}'),
    { mid: 7, key: "k1", room: "live://1", platform: "web", accepts: [1000, 1001] },
  );
});

Deno.test("parseGoimAuth leaves absent and null fields out", () => {
  assert.deepEqual(auth("{}"), {});
  assert.deepEqual(auth('{"mid":null,"key":null,"room_id":"r","accepts":null,"other":1}'), {
    room: "r",
  });
});

Deno.test("parseGoimAuth throws TypeError naming what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["not json", /not valid JSON/],
    ["[1]", /not a JSON object/],
    ["null", /not a JSON object/],
    ['{"mid":"7"}', /mid is not a number/],
    ['{"key":1}', /key is not a string/],
    ['{"room_id":{}}', /room_id is not a string/],
    ['{"platform":true}', /platform is not a string/],
    ['{"accepts":1000}', /accepts is not an array/],
  ];
  for (const [json, message] of cases) {
    assert.throws(() => auth(json), { name: "TypeError", message });
  }
  assert.throws(() => parseGoimAuth(new Uint8Array([0xff, 0xfe])), /not valid JSON/);
});

Deno.test("default operator parses the auth body and echoes upstream bodies", () => {
  const op = new DefaultOperator();
  const info = { transport: "tcp", remoteAddr: { hostname: "127.0.0.1", port: 1 } };
  assert.deepEqual(op.connect({ body: utf8.encode('{"mid":3}'), info }), { mid: 3 });
  const body = utf8.encode("hi");
  // deno-lint-ignore no-explicit-any
  assert.equal(op.receive(undefined as any, { op: 4, seq: 1, ver: 1, body }), body);
});
