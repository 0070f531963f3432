// Unit tests of the hub's registry: keys, users, rooms and the online figures.
import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { silentLogger } from "../src/log.ts";
import { Backlog } from "../src/server/backlog.ts";
import { Channel } from "../src/server/channel.ts";
import { HubEvents } from "../src/server/hub_events.ts";
import { Registry } from "../src/server/registry.ts";
import { FakeHooks, FakeWire } from "./_fake_wire.ts";

function setup() {
  const heard: string[] = [];
  const events = new HubEvents(silentLogger, {
    roomOpened: (room) => void heard.push(`opened ${room}`),
    roomClosed: (room) => void heard.push(`closed ${room}`),
  });
  const registry = new Registry(4, new Backlog(), events);
  const hooks = new FakeHooks();
  const open = (key: string, mid = 0, hostname = "127.0.0.1"): Channel => {
    const wire = new FakeWire();
    (wire.info as { remoteAddr: { hostname: string; port: number } }).remoteAddr = {
      hostname,
      port: 1,
    };
    const ch = new Channel(wire, { queueSize: 8, slow: "close", hooks, closeGrace: 100 });
    ch.key = key;
    ch.mid = mid;
    ch._open();
    return ch;
  };
  return { registry, heard, open };
}

Deno.test("registry: a key registered twice replaces the older connection, which is closed", () => {
  const { registry, open } = setup();
  const older = open("k");
  const newer = open("k");
  registry.add(older, "127.0.0.1", "");
  registry.add(newer, "127.0.0.1", "");
  assert.equal(registry.channel("k"), newer);
  assert.equal(older.state, "closing");
  assert.equal(older._closeReason, "replaced by a new connection with the same key");
  // The older one leaves in its own cleanup, which must not take the key from the newer.
  registry.remove(older);
  assert.equal(registry.channel("k"), newer);
  assert.equal(registry.connections, 1);
});

Deno.test("registry: a user's devices are found together and one at a time once others go", () => {
  const { registry, open } = setup();
  const phone = open("phone", 7);
  const laptop = open("laptop", 7);
  registry.add(phone, "127.0.0.1", "");
  assert.equal(registry.mid(7), phone);
  registry.add(laptop, "127.0.0.1", "");
  assert.deepEqual(registry.mid(7), new Set([phone, laptop]));
  registry.remove(phone);
  assert.equal(registry.mid(7), laptop);
  registry.remove(laptop);
  assert.equal(registry.mid(7), undefined);
});

Deno.test("registry: rooms are counted, and the observer hears of first and last members", () => {
  const { registry, heard, open } = setup();
  const a = open("a");
  const b = open("b");
  registry.add(a, "127.0.0.1", "live://1");
  registry.add(b, "127.0.0.2", "live://1");
  assert.equal(registry.roomOnline("live://1"), 2);
  registry.changeRoom(b, "live://2");
  assert.deepEqual([...registry.rooms], [["live://1", 1], ["live://2", 1]]);
  assert.deepEqual(registry.topRooms("live://", 1), [{ room: "live://1", count: 1 }]);
  registry.remove(a);
  registry.changeRoom(b, "");
  assert.equal(registry.rooms.size, 0);
  assert.deepEqual(heard, [
    "opened live://1",
    "opened live://2",
    "closed live://1",
    "closed live://2",
  ]);
});

Deno.test("registry: a room id longer than 256 characters is refused", () => {
  const { registry, open } = setup();
  const a = open("a");
  registry.add(a, "127.0.0.1", "");
  assert.throws(() => registry.changeRoom(a, "r".repeat(257)), RangeError);
  assert.equal(a.room, "");
});

Deno.test("registry: online figures count connections, distinct addresses and queued frames", () => {
  const { registry, open } = setup();
  const a = open("a", 0, "10.0.0.1");
  const b = open("b", 0, "10.0.0.1");
  const c = open("c", 0, "10.0.0.2");
  for (const ch of [a, b, c]) registry.add(ch, ch.info.remoteAddr.hostname, "");
  b.push(encodeFrame(1000, 0, new Uint8Array(1)));
  b.push(encodeFrame(1000, 0, new Uint8Array(1)));
  c.push(encodeFrame(1000, 0, new Uint8Array(1)));
  assert.deepEqual(registry.onlineTotal(), { ipCount: 2, connCount: 3 });
  const figures = registry.figures();
  assert.deepEqual([...figures.transports], [["fake", 3]]);
  assert.deepEqual(figures.queue, { depth: 3, max: 2 });
  assert.deepEqual(new Set(registry.sessions()), new Set([a, b, c]));
  registry.remove(c);
  assert.deepEqual(registry.onlineTotal(), { ipCount: 1, connCount: 2 });
});
