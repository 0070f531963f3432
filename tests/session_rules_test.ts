import assert from "node:assert/strict";
import { normalizeSession } from "../src/server/session_rules.ts";

Deno.test("session rules: defaults fill what the operator left out", () => {
  const s = normalizeSession({}, 60_000);
  assert.match(s.key, /^[0-9a-f-]{36}$/);
  assert.deepEqual(
    { ...s, key: "" },
    {
      mid: 0,
      key: "",
      room: "",
      accepts: [],
      platform: "",
      heartbeat: 60_000,
      expiresAt: Infinity,
      rooms: undefined,
    },
  );
});

Deno.test("session rules: what the operator gives is kept", () => {
  const given = {
    mid: 7,
    key: "k",
    room: "live://1",
    accepts: [1000],
    platform: "web",
    heartbeat: 5_000,
    expiresAt: Date.now() + 60_000,
    rooms: ["live://1", "live://2"],
  };
  assert.deepEqual(normalizeSession(structuredClone(given), 60_000), given);
});

Deno.test("session rules: malformed sessions are refused with the reason", () => {
  const bad: [unknown, RegExp][] = [
    [null, /no session/],
    [{ mid: -1 }, /mid must be a non-negative safe integer/],
    [{ key: "k".repeat(257) }, /key must be a string of at most 256/],
    [{ room: 5 }, /room must be a string/],
    [{ accepts: [2 ** 31] }, /accepts must be an array of 32-bit integers/],
    [{ expiresAt: Date.now() - 1 }, /already expired/],
    [{ rooms: ["live://2"], room: "live://1" }, /not among its allowed rooms/],
  ];
  for (const [session, reason] of bad) {
    assert.throws(
      () => normalizeSession(session as never, 60_000),
      (err: Error) => err instanceof TypeError && reason.test(err.message),
      String(reason),
    );
  }
  assert.throws(() => normalizeSession({ heartbeat: 0 }, 60_000), RangeError);
});
