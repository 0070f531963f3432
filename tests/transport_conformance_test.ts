// One table of behaviours every transport must show, run over each row of TRANSPORTS: TCP,
// TLS, the WebSocket listener (plain and TLS), the Deno.serve handler and gtcp pkg. What is
// particular to one transport (WebSocket handshakes and masking, pkg header sizes, TLS
// certificates, backpressure) stays in that transport's own test file.
import assert from "node:assert/strict";
import type { Frame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import type { Comet, CometOptions } from "../src/server/comet.ts";
import { type ConnectRequest, DefaultOperator } from "../src/server/operator.ts";
import type { ConnInfo } from "../src/server/wire.ts";
import { concat } from "./_bytes.ts";
import { text, until, utf8 } from "./_helpers.ts";
import { Hub, NO_OP, type TransportCase, type TransportClient, TRANSPORTS } from "./_transports.ts";
import { encodeClientFrame, Opcode } from "./_ws_client.ts";

/** One behaviour, run over every transport it applies to. */
interface Scenario {
  name: string;
  /** The transports it applies to; the others are left out, and the row says why. */
  applies?: (t: TransportCase) => boolean;
  /** Runs over `t`; `start` makes a hub served by `t` alone (a silent logger, then `options`). */
  run(t: TransportCase, start: (options?: CometOptions) => Promise<Hub>): Promise<void>;
}

/** Expects a push of `op` with `body`: seq 0 where frames have ops, the payload on pkg. */
async function expectPush(
  t: TransportCase,
  c: TransportClient,
  op: number,
  body: string,
): Promise<void> {
  const f = await c.next();
  if (t.ops) assert.deepEqual([f.op, f.seq, text(f.body)], [op, 0, body]);
  else assert.deepEqual([f.op, text(f.body)], [NO_OP, body]);
}

/** Sends a heartbeat; the reply's online count, or undefined on pkg (an empty package). */
async function heartbeat(
  t: TransportCase,
  c: TransportClient,
  seq?: number,
): Promise<number | undefined> {
  const sent = await c.send(Op.Heartbeat, "", seq);
  const f = await c.next();
  if (!t.ops) {
    assert.deepEqual([f.op, f.body.length], [NO_OP, 0], "an empty package");
    return undefined;
  }
  assert.deepEqual([f.op, f.seq, f.body.length], [Op.HeartbeatReply, sent, 4]);
  return new DataView(f.body.buffer, f.body.byteOffset, 4).getInt32(0);
}

/** Expects op 6 with `reason` where frames have ops, then the server closing the connection. */
async function expectGoodbye(t: TransportCase, c: TransportClient, reason: RegExp): Promise<void> {
  if (t.ops) {
    const f: Frame = await c.next();
    assert.equal(f.op, Op.DisconnectReply, `op 6, not op ${f.op} "${text(f.body)}"`);
    assert.match(text(f.body), reason);
  }
  assert.ok(await c.closedByServer(), "the server closes the connection");
}

/**
 * After a bad client in live://1 is closed: it has left, the hub counts `errors` protocol
 * errors, and `good` (now alone in live://1) still gets pushes.
 */
async function othersUnharmed(
  t: TransportCase,
  hub: Hub,
  good: TransportClient,
  errors: number,
): Promise<void> {
  assert.ok(await until(() => hub.comet.connections === 1), "the bad client has left");
  assert.ok(await until(() => hub.comet.stats.protocolErrors === errors));
  const body = `still here after ${errors}`;
  assert.equal(hub.comet.pushRoom("live://1", 1000, utf8.encode(body)), 1);
  await expectPush(t, good, 1000, body);
}

/** Whether every client stays silent for a while. */
async function allSilent(...clients: TransportClient[]): Promise<boolean> {
  const silences = await Promise.all(clients.map((c) => c.silent(150)));
  return silences.every((s) => s);
}

/** The operator that records what each connection presented, with goim's own auth. */
function recording(seen: ConnInfo[]): DefaultOperator {
  const operator = new DefaultOperator();
  const connect = operator.connect.bind(operator);
  operator.connect = (request: ConnectRequest) => {
    seen.push({ ...request.info });
    return connect(request);
  };
  return operator;
}

/**
 * A push of one kind: the clients (each goim auth JSON) that see it, what `push` returns
 * (how many it reached), and which keys get `op` with `body`; the others get nothing.
 */
interface PushCase {
  name: string;
  clients: Record<string, unknown>[];
  push(comet: Comet): number;
  op: number;
  body: string;
  reach: string[];
}

const PUSHES: PushCase[] = [
  {
    name: "a room push reaches every member once and nobody else",
    clients: [
      { key: "a", room_id: "live://1" },
      { key: "b", room_id: "live://1", accepts: [1001] },
      { key: "o", room_id: "live://2", accepts: [1000] },
      { key: "n", accepts: [1000] },
    ],
    push: (comet) => comet.pushRoom("live://1", 1000, utf8.encode("room")),
    op: 1000,
    body: "room",
    reach: ["a", "b"],
  },
  {
    name: "an empty push arrives with an empty body",
    clients: [{ key: "a", room_id: "live://1" }],
    push: (comet) => comet.pushRoom("live://1", 1002, new Uint8Array(0)),
    op: 1002,
    body: "",
    reach: ["a"],
  },
  {
    name: "a key push reaches the listed keys that watch its op",
    clients: [{ key: "a", accepts: [1000] }, { key: "b", accepts: [1001] }, {
      key: "c",
      accepts: [1000],
    }],
    push: (comet) => comet.pushKeys(["a", "b"], 1000, utf8.encode("keys")),
    op: 1000,
    body: "keys",
    reach: ["a"],
  },
  {
    name: "a mid push reaches every device of the user",
    clients: [
      { mid: 7, key: "a", accepts: [1001] },
      { mid: 7, key: "b", room_id: "live://1", accepts: [1001] },
      { mid: 8, key: "c", accepts: [1001] },
    ],
    push: (comet) => comet.pushMids([7], 1001, utf8.encode("mid")),
    op: 1001,
    body: "mid",
    reach: ["a", "b"],
  },
  {
    name: "a broadcast reaches every connection that watches its op, in any room",
    clients: [
      { key: "a", room_id: "live://1", accepts: [1001] },
      { key: "b", accepts: [1001] },
      { key: "c", accepts: [1000] },
    ],
    push: (comet) => comet.pushAll(1001, utf8.encode("all")),
    op: 1001,
    body: "all",
    reach: ["a", "b"],
  },
];

function pushScenario(p: PushCase): Scenario {
  return {
    name: p.name,
    async run(t, start) {
      await using hub = await start();
      const clients = new Map<string, TransportClient>();
      for (const auth of p.clients) clients.set(String(auth.key), await hub.auth(auth));
      assert.equal(p.push(hub.comet), p.reach.length);
      for (const key of p.reach) await expectPush(t, clients.get(key)!, p.op, p.body);
      assert.ok(await allSilent(...clients.values()), "once, and nobody else");
    },
  };
}

const SCENARIOS: Scenario[] = [
  {
    name: "auth reply echoes the seq and heartbeat replies count the room",
    async run(t, start) {
      await using hub = await start();
      const c = await hub.connect();
      const auth = { mid: 1, key: "a", room_id: "live://1", accepts: [1000] };
      await c.send(Op.Auth, JSON.stringify(auth), 77);
      if (t.ops) {
        const reply = await c.next();
        assert.deepEqual([reply.op, reply.seq, reply.ver, reply.body.length], [
          Op.AuthReply,
          77,
          1,
          0,
        ]);
      } else {
        // pkg has no auth reply: the next package is the heartbeat's.
        assert.ok(await until(() => hub.comet.channel("a") !== undefined));
      }
      assert.equal(await heartbeat(t, c, 42), t.ops ? 1 : undefined);
      await hub.auth({ key: "b", room_id: "live://1" });
      assert.equal(await heartbeat(t, c), t.ops ? 2 : undefined);
      assert.ok(await c.silent(100), "one reply each, nothing for the other's auth");
    },
  },
  {
    name: "the operator sees the transport, the peer and the upgrade headers",
    async run(t, start) {
      const seen: ConnInfo[] = [];
      await using hub = await start({ operator: recording(seen) });
      const headers = t.websocket
        ? { Origin: "https://example.com", Cookie: "sid=abc" }
        : undefined;
      const auth = {
        mid: 7,
        key: "k",
        room_id: "live://1",
        platform: "web",
        accepts: [1001, 1000],
      };
      await hub.auth(auth, t, headers);
      assert.equal(seen.length, 1);
      const info = seen[0]!;
      assert.equal(info.transport, t.transport);
      assert.equal(info.remoteAddr.hostname, "127.0.0.1");
      const port = hub.served().port;
      assert.ok(info.remoteAddr.port > 0 && info.remoteAddr.port !== port);
      if (t.websocket) {
        assert.equal(info.headers?.get("origin"), "https://example.com");
        assert.equal(info.headers?.get("cookie"), "sid=abc");
        assert.equal(info.headers?.get("upgrade")?.toLowerCase(), "websocket");
        assert.equal(info.headers?.get("host"), `127.0.0.1:${port}`);
      } else {
        assert.equal(info.headers, undefined);
      }
      const ch = hub.comet.channel("k")!;
      assert.equal(ch.info.transport, t.transport);
      assert.equal(ch.info.headers, undefined, "the upgrade headers are the operator's only");
      assert.deepEqual([ch.mid, ch.room, ch.platform], [7, "live://1", "web"]);
      assert.deepEqual(ch.watched().sort(), [1000, 1001]);
      assert.equal(hub.comet.roomOnline("live://1"), 1);
    },
  },
  {
    name: "an upstream message gets the operator's reply with its seq, once",
    async run(t, start) {
      await using hub = await start();
      const c = await hub.auth({ key: "a" });
      const seq = await c.send(Op.SendMsg, "up");
      const f = await c.next();
      if (t.ops) assert.deepEqual([f.op, f.seq, text(f.body)], [Op.SendMsgReply, seq, "up"]);
      else assert.equal(text(f.body), "up");
      assert.ok(await c.silent(100));
    },
  },
  {
    name: "a body of exactly the limit is echoed whole",
    async run(_t, start) {
      await using hub = await start();
      const c = await hub.auth({ key: "a" });
      const big = new Uint8Array(hub.comet.maxBody).map((_, i) => i & 0xff);
      await c.send(Op.SendMsg, big);
      assert.deepEqual((await c.next()).body, big);
    },
  },
  {
    name: "frames sent in one write get their replies in order",
    async run(t, start) {
      await using hub = await start();
      const c = await hub.auth({ key: "a" });
      const ops: [number, string][] = [[Op.Heartbeat, ""], [Op.SendMsg, "x"], [Op.Heartbeat, ""], [
        Op.SendMsg,
        "yz",
      ]];
      await c.write(concat(ops.map(([op, body]) => c.encode(op, body))));
      const got = [];
      for (let i = 0; i < 4; i++) got.push(await c.next());
      const reply = t.ops ? [Op.HeartbeatReply, Op.SendMsgReply] : [NO_OP, NO_OP];
      assert.deepEqual(got.map((f) => f.op), [reply[0], reply[1], reply[0], reply[1]]);
      assert.deepEqual(got.filter((_, i) => i % 2).map((f) => text(f.body)), ["x", "yz"]);
    },
  },
  ...PUSHES.map(pushScenario),
  {
    name: "pushes flushed together arrive whole and in order, batched as op 9 on WebSocket",
    async run(t, start) {
      await using hub = await start();
      const c = await hub.auth({ key: "a", room_id: "live://b" });
      for (let i = 0; i < 5; i++) hub.comet.pushRoom("live://b", 1000 + i, utf8.encode(`m${i}`));
      for (let i = 0; i < 5; i++) await expectPush(t, c, 1000 + i, `m${i}`);
      assert.equal(c.batches, t.websocket ? 1 : 0, "one op-9 message of five frames");
      hub.comet.pushRoom("live://b", 1000, utf8.encode("alone"));
      await expectPush(t, c, 1000, "alone");
      assert.equal(c.batches, t.websocket ? 1 : 0, "a lone push is a plain frame");
    },
  },
  {
    name: "watch and unwatch ops change which key pushes arrive",
    // pkg clients can say nothing but auth, heartbeats and messages: no op under 1000.
    applies: (t) => t.ops,
    async run(t, start) {
      await using hub = await start();
      const c = await hub.auth({ key: "s" });
      const comet = hub.comet;
      let seq = await c.send(Op.Sub, "1001,1002");
      let f = await c.next();
      assert.deepEqual([f.op, f.seq, text(f.body)], [Op.SubReply, seq, "1001,1002"]);
      assert.equal(comet.pushKeys(["s"], 1001, utf8.encode("one")), 1);
      assert.equal(comet.pushKeys(["s"], 1003, utf8.encode("three")), 0);
      await expectPush(t, c, 1001, "one");
      seq = await c.send(Op.Unsub, "1001");
      f = await c.next();
      assert.deepEqual([f.op, f.seq, text(f.body)], [Op.UnsubReply, seq, "1001"]);
      assert.equal(comet.pushKeys(["s"], 1001, utf8.encode("gone")), 0);
      assert.equal(comet.pushKeys(["s"], 1002, utf8.encode("two")), 1);
      await expectPush(t, c, 1002, "two");
    },
  },
  {
    name: "a room change moves room pushes and online counts",
    // pkg clients can say nothing but auth, heartbeats and messages: no op under 1000.
    applies: (t) => t.ops,
    async run(t, start) {
      await using hub = await start();
      const c = await hub.auth({ key: "mover", room_id: "live://1" });
      const stay = await hub.auth({ key: "stay", room_id: "live://1" });
      const seq = await c.send(Op.ChangeRoom, "live://2");
      const f = await c.next();
      assert.deepEqual([f.op, f.seq, text(f.body)], [Op.ChangeRoomReply, seq, "live://2"]);
      assert.equal(hub.comet.pushRoom("live://1", 1000, utf8.encode("old")), 1);
      assert.equal(hub.comet.pushRoom("live://2", 1000, utf8.encode("new")), 1);
      await expectPush(t, c, 1000, "new");
      await expectPush(t, stay, 1000, "old");
      assert.equal(await heartbeat(t, c), 1);
      assert.equal(await heartbeat(t, stay), 1);
    },
  },
  {
    name: "a refused auth is closed, with a goodbye where frames have ops",
    async run(t, start) {
      await using hub = await start();
      const c = await hub.connect();
      await c.send(Op.Auth, "not json");
      await expectGoodbye(t, c, /^auth failed: /);
      assert.equal(hub.comet.stats.authFailed, 1);
      assert.equal(hub.comet.connections, 0);
      await assert.rejects(c.next(10), /Connection closed/, "nothing after the goodbye");
    },
  },
  {
    name: "a malformed frame closes only that connection, after a goodbye",
    // pkg framing is a length alone: the body-limit scenario covers the one way to break it.
    applies: (t) => t.malformed.length > 0,
    async run(t, start) {
      await using hub = await start();
      const good = await hub.auth({ key: "good", room_id: "live://1" });
      for (const [i, bytes] of t.malformed.entries()) {
        const bad = await hub.auth({ key: "bad", room_id: "live://1" });
        await bad.write(bytes);
        await expectGoodbye(t, bad, /protocol error|not one goim frame/);
        if (t.websocket) assert.equal(bad.closeCode, 1002);
        await othersUnharmed(t, hub, good, i + 1);
      }
    },
  },
  {
    name: "a text message closes only that connection with 1003",
    // Only WebSocket has text messages.
    applies: (t) => t.websocket,
    async run(t, start) {
      await using hub = await start();
      const good = await hub.auth({ key: "good", room_id: "live://1" });
      const bad = await hub.auth({ key: "bad", room_id: "live://1" });
      await bad.write(encodeClientFrame(Opcode.Text, utf8.encode("hello")));
      await expectGoodbye(t, bad, /^protocol error: Text messages are not supported$/);
      assert.equal(bad.closeCode, 1003);
      await othersUnharmed(t, hub, good, 1);
    },
  },
  {
    name: "a frame over the body limit closes only that connection",
    async run(t, start) {
      await using hub = await start({ maxBody: 64 });
      const good = await hub.auth({ key: "good", room_id: "live://1" });
      const bad = await hub.auth({ key: "bad", room_id: "live://1" });
      await bad.send(Op.SendMsg, "x".repeat(65));
      assert.ok(await bad.closedByServer());
      if (t.websocket) assert.equal(bad.closeCode, 1009);
      await othersUnharmed(t, hub, good, 1);
      assert.equal(hub.comet.channel("bad"), undefined);
    },
  },
  {
    name: "a connection that never authenticates is cut at the handshake deadline",
    async run(_t, start) {
      await using hub = await start({ handshakeTimeout: 100 });
      const c = await hub.connect();
      assert.ok(await c.closedByServer());
      assert.equal(hub.comet.stats.handshakeTimeouts, 1);
      assert.ok(await until(() => hub.comet.handshaking === 0));
    },
  },
  {
    name: "a silent connection is cut at its heartbeat deadline",
    async run(t, start) {
      await using hub = await start({ heartbeatTimeout: 150 });
      const c = await hub.auth({ key: "silent" });
      assert.ok(await c.closedByServer());
      if (t.websocket) assert.equal(c.closeCode, 1000);
      assert.equal(hub.comet.stats.heartbeatTimeouts, 1);
      assert.equal(hub.comet.channel("silent"), undefined);
    },
  },
  {
    name: "a client that leaves is unregistered, a WebSocket close answered in kind",
    async run(t, start) {
      await using hub = await start();
      const c = await hub.auth({ key: "a", room_id: "live://1" });
      assert.equal(hub.comet.connections, 1);
      await c.leave();
      if (t.websocket) {
        assert.ok(await c.closedByServer());
        assert.equal(c.closeCode, 1000, "the server echoes the client's code");
      }
      assert.ok(await until(() => hub.comet.connections === 0));
      assert.equal(hub.comet.roomOnline("live://1"), 0);
      assert.equal(hub.comet.stats.protocolErrors, 0);
    },
  },
  {
    name: "shutdown flushes what is queued, says goodbye where it can and closes",
    async run(t, start) {
      await using hub = await start();
      const c = await hub.auth({ key: "a", room_id: "live://1" });
      hub.comet.pushRoom("live://1", 1000, utf8.encode("last"));
      const closing = hub.comet.close();
      await expectPush(t, c, 1000, "last");
      // pkg has no form for op 6: its clients are closed without a word.
      await expectGoodbye(t, c, /^server shutting down$/);
      if (t.websocket) assert.equal(c.closeCode, 1000);
      await closing;
      await assert.rejects(c.next(10), /Connection closed/);
    },
  },
];

for (const scenario of SCENARIOS) {
  for (const t of TRANSPORTS) {
    if (scenario.applies && !scenario.applies(t)) continue;
    Deno.test(`${t.name}: ${scenario.name}`, async () => {
      await scenario.run(t, (options = {}) => Hub.start(options, t));
    });
  }
}
