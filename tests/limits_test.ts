// The hub's limits over real loopback sockets, each set small: a hit refuses at
// accept (no frame, no channel, no timer) or closes with op 6 and a reason, and
// is counted in stats.limitHits; well-behaved clients are not touched.
import assert from "node:assert/strict";
import { OperatorUnavailableError } from "../src/server/operator_unavailable_error.ts";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { silentLogger } from "../src/log.ts";
import { Comet, DEFAULT_LIMITS } from "../src/server/comet.ts";
import { newStats } from "../src/server/hub_stats.ts";
import { Limits } from "../src/server/limits.ts";
import type { Operator } from "../src/server/operator.ts";
import type { CometServer } from "../src/serve.ts";
import { startServer, TestClient, text, until, utf8 } from "./_helpers.ts";
import { concat } from "./_bytes.ts";
import { Hub, TRANSPORTS } from "./_transports.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function port(server: CometServer): number {
  return server.addrs.tcp!.port;
}

/** Connects and expects the server to close at once, before any frame. */
async function expectRefusedAtAccept(port: number, hostname = "127.0.0.1"): Promise<void> {
  await using c = await TestClient.connect(port, hostname);
  // Even a valid auth frame gets no answer: the socket is already closed.
  c.sendFrame(Op.Auth, JSON.stringify({ mid: 1 }));
  assert.ok(await c.closedByServer(2_000), "the server closes a refused connection");
  assert.deepEqual(c.buffered, [], "no frame before the close");
}

/** Sends a heartbeat and expects its reply: the connection still works. */
async function alive(c: TestClient): Promise<void> {
  const seq = c.sendFrame(Op.Heartbeat);
  const f = await c.nextOp(Op.HeartbeatReply);
  assert.equal(f.seq, seq);
}

Deno.test("limits: none by default in the library; the documented defaults", () => {
  assert.deepEqual(DEFAULT_LIMITS, {
    maxConnections: 100_000,
    maxConnectionsPerIp: 1_000,
    connectRate: 200,
    maxAuthAttempts: 20,
    authWindow: 60_000,
    upstreamRate: 100,
    maxRooms: 100_000,
    trustProxy: [],
  });
  assert.ok(Object.isFrozen(DEFAULT_LIMITS));
  assert.ok(Object.isFrozen(DEFAULT_LIMITS.trustProxy));
  assert.equal(new Comet().trustedProxies.empty, true, "no proxy is trusted by default");
  const comet = new Comet();
  assert.deepEqual(comet.stats.limitHits, {
    connections: 0,
    connectionsPerIp: 0,
    connectRate: 0,
    authAttempts: 0,
    upstreamRate: 0,
    rooms: 0,
  });
  for (
    const limits of [
      { maxConnections: 0 },
      { maxConnectionsPerIp: -1 },
      { maxRooms: 1.5 },
      { connectRate: NaN },
      { upstreamRate: 0 },
      { authWindow: 0 },
    ]
  ) {
    assert.throws(() => new Comet({ limits }), RangeError, JSON.stringify(limits));
  }
  assert.throws(() => new Comet({ traceMids: [0] }), RangeError);
  // Infinity is "no limit", as is leaving it out.
  new Comet({ limits: { maxConnections: Infinity, connectRate: 0.5 } });
});

Deno.test("limits: max connections refuses at accept, costs no timer, and frees up", async () => {
  await using server = startServer({ limits: { maxConnections: 2 } });
  const { comet } = server;
  await using a = await TestClient.auth(port(server), { mid: 1 });
  // A connection still in its handshake counts too.
  await using b = await TestClient.connect(port(server));
  assert.ok(await until(() => comet.handshaking === 1));
  await expectRefusedAtAccept(port(server));
  assert.equal(comet.stats.limitHits.connections, 1);
  assert.equal(comet.stats.accepted, 2, "a refused connection is not accepted");
  assert.equal(comet.timers, 2, "one timer per live connection, none for the refused one");
  assert.equal(comet.handshaking, 1);
  await alive(a);

  await b.close();
  assert.ok(await until(() => comet.handshaking === 0 && comet.timers === 1));
  await using c = await TestClient.auth(port(server), { mid: 2 });
  await alive(c);
  assert.equal(comet.stats.limitHits.connections, 1);
});

Deno.test("limits: connections per IP are counted per address", async () => {
  await using server = startServer({ limits: { maxConnectionsPerIp: 2 } });
  await using a = await TestClient.auth(port(server), { mid: 1 });
  await using b = await TestClient.auth(port(server), { mid: 2 });
  await expectRefusedAtAccept(port(server));
  await expectRefusedAtAccept(port(server));
  assert.equal(server.comet.stats.limitHits.connectionsPerIp, 2);
  await alive(a);
  await alive(b);
  await a.close();
  assert.ok(await until(() => server.comet.connections === 1));
  await using c = await TestClient.auth(port(server), { mid: 3 });
  await alive(c);
});

Deno.test("limits: another address has its own connection count", async () => {
  // Linux gives every loopback IPv4 connection the source 127.0.0.1; a dual-stack
  // listener reached over ::1 is the way to a second address.
  let server: CometServer;
  try {
    server = startServer({ tcp: { hostname: "::", port: 0 }, limits: { maxConnectionsPerIp: 1 } });
  } catch (err) {
    console.warn("skipping: cannot listen on ::", err);
    return;
  }
  try {
    await using v4 = await TestClient.auth(port(server), { mid: 1 }, "127.0.0.1");
    await expectRefusedAtAccept(port(server), "127.0.0.1");
    await using v6 = await TestClient.auth(port(server), { mid: 2 }, "::1");
    await alive(v4);
    await alive(v6);
    assert.equal(server.comet.stats.limitHits.connectionsPerIp, 1);
  } finally {
    await server.shutdown();
  }
});

Deno.test("limits: the connect rate lets a burst through, then refuses until it refills", async () => {
  await using server = startServer({ limits: { connectRate: 2 } });
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 2; i++) clients.push(await TestClient.auth(port(server), { mid: i + 1 }));
    await expectRefusedAtAccept(port(server));
    assert.equal(server.comet.stats.limitHits.connectRate, 1);
    // Connections already in are not affected.
    for (const c of clients) await alive(c);
    // 2 per second: one token is back after 500 ms.
    await sleep(550);
    clients.push(await TestClient.auth(port(server), { mid: 9 }));
    await alive(clients.at(-1)!);
    assert.equal(server.comet.stats.limitHits.connectRate, 1);
  } finally {
    for (const c of clients) await c.close();
  }
});

Deno.test("limits: refused authentications bar the address for one window", async () => {
  const operator: Operator = {
    connect({ body }) {
      const auth = JSON.parse(text(body));
      if (auth.token !== "good") throw new Error("Bad token");
      return { mid: auth.mid };
    },
  };
  await using server = startServer({
    operator,
    limits: { maxAuthAttempts: 2, authWindow: 1_000 },
  });
  const { comet } = server;
  // A client that authenticated before is left alone throughout.
  await using good = await TestClient.auth(port(server), { token: "good", mid: 1 });
  for (let i = 0; i < 2; i++) {
    await using c = await TestClient.connect(port(server));
    c.sendFrame(Op.Auth, JSON.stringify({ token: "guess" }));
    const f = await c.next();
    assert.equal(f.op, Op.DisconnectReply);
    assert.equal(text(f.body), "auth failed: Bad token");
    assert.ok(await c.closedByServer());
  }
  assert.equal(comet.stats.authFailed, 2);
  // Barred now, even with the right token.
  await expectRefusedAtAccept(port(server));
  assert.equal(comet.stats.limitHits.authAttempts, 1);
  await alive(good);
  await sleep(1_050);
  await using back = await TestClient.auth(port(server), { token: "good", mid: 2 });
  await alive(back);
  assert.equal(comet.stats.limitHits.authAttempts, 1);
});

Deno.test("limits: an auth service that fails does not bar its clients", async () => {
  const operator: Operator = {
    connect() {
      throw new OperatorUnavailableError("auth service unavailable");
    },
  };
  await using server = startServer({ operator, limits: { maxAuthAttempts: 1 } });
  for (let i = 0; i < 3; i++) {
    await using c = await TestClient.connect(port(server));
    c.sendFrame(Op.Auth, "{}");
    assert.equal(text((await c.next()).body), "auth failed: auth service unavailable");
  }
  assert.equal(server.comet.stats.limitHits.authAttempts, 0);
});

Deno.test("limits: refusal at accept is the same on every transport", async () => {
  await using server = startServer({
    pkg: { hostname: "127.0.0.1", port: 0 },
    limits: { maxConnectionsPerIp: 1 },
  });
  // A socket that has not even sent its WebSocket upgrade is a connection.
  await using first = await TestClient.connect(server.addrs.ws!.port);
  assert.ok(await until(() => server.comet.handshaking === 1));
  await expectRefusedAtAccept(server.addrs.ws!.port);
  await expectRefusedAtAccept(server.addrs.pkg!.port);
  await expectRefusedAtAccept(port(server));
  assert.equal(server.comet.stats.limitHits.connectionsPerIp, 3);
  assert.equal(server.comet.timers, 1);
  await first.close();
});

Deno.test("limits: failures spread over windows do not bar", async () => {
  const operator: Operator = {
    connect() {
      throw new Error("Nope");
    },
  };
  await using server = startServer({ operator, limits: { maxAuthAttempts: 2, authWindow: 200 } });
  for (let i = 0; i < 3; i++) {
    await using c = await TestClient.connect(port(server));
    c.sendFrame(Op.Auth, "{}");
    assert.equal((await c.next()).op, Op.DisconnectReply);
    await sleep(250);
  }
  assert.equal(server.comet.stats.limitHits.authAttempts, 0);
});

Deno.test("limits: upstream messages beyond the rate close with op 6", async () => {
  await using server = startServer({ limits: { upstreamRate: 5 } });
  await using c = await TestClient.auth(port(server), { mid: 1 });
  // Six in one write: the burst of five is answered, the sixth closes.
  const frames = Array.from(
    { length: 6 },
    (_, i) => encodeFrame(Op.SendMsg, i + 1, utf8.encode("m")),
  );
  await c.write(concat(frames));
  for (let seq = 1; seq <= 5; seq++) {
    const f = await c.next();
    assert.deepEqual([f.op, f.seq], [Op.SendMsgReply, seq]);
  }
  const bye = await c.next();
  assert.equal(bye.op, Op.DisconnectReply);
  assert.equal(text(bye.body), "rate limit: upstream messages");
  assert.ok(await c.closedByServer());
  assert.equal(server.comet.stats.limitHits.upstreamRate, 1);
  assert.ok(await until(() => server.comet.timers === 0));
});

Deno.test("limits: a client within the upstream rate is never cut off", async () => {
  await using server = startServer({ limits: { upstreamRate: 10 } });
  await using c = await TestClient.auth(port(server), { mid: 1 });
  // 15 messages at about 7 per second: more than the burst, less than the rate.
  for (let i = 0; i < 15; i++) {
    const seq = c.sendFrame(Op.SendMsg, `m${i}`);
    assert.equal((await c.nextOp(Op.SendMsgReply)).seq, seq);
    await sleep(140);
  }
  // Heartbeats are not upstream messages.
  for (let i = 0; i < 20; i++) await alive(c);
  assert.equal(server.comet.stats.limitHits.upstreamRate, 0);
});

Deno.test("limits: joining a new room beyond max rooms closes with op 6", async () => {
  await using server = startServer({ limits: { maxRooms: 2 } });
  const { comet } = server;
  await using a = await TestClient.auth(port(server), { mid: 1, room_id: "live://1" });
  await using b = await TestClient.auth(port(server), { mid: 2, room_id: "live://2" });
  // At auth: refused.
  {
    await using c = await TestClient.connect(port(server));
    c.sendFrame(Op.Auth, JSON.stringify({ mid: 3, room_id: "live://3" }));
    const f = await c.next();
    assert.equal(f.op, Op.DisconnectReply);
    assert.equal(text(f.body), "room limit: too many rooms on this node");
    assert.ok(await c.closedByServer());
  }
  assert.equal(comet.stats.limitHits.rooms, 1);
  // Rooms that have members, and no room at all, are fine.
  await using d = await TestClient.auth(port(server), { mid: 4, room_id: "live://1" });
  await using e = await TestClient.auth(port(server), { mid: 5, key: "e" });
  // The only member of a room may move to a new one: the count stays.
  const seq = b.sendFrame(Op.ChangeRoom, "live://4");
  assert.equal((await b.nextOp(Op.ChangeRoomReply)).seq, seq);
  assert.deepEqual([...comet.rooms.keys()].sort(), ["live://1", "live://4"]);
  // With op 12, into a new room while others remain: closed.
  a.sendFrame(Op.ChangeRoom, "live://5");
  const bye = await a.nextOp(Op.DisconnectReply);
  assert.equal(text(bye.body), "room limit: too many rooms on this node");
  assert.ok(await a.closedByServer());
  assert.equal(comet.stats.limitHits.rooms, 2);
  assert.equal(comet.pushRoom("live://1", 1000, utf8.encode("still here")), 1);
  assert.equal(text((await d.nextOp(1000)).body), "still here");
  await alive(e);
  // The server itself may still place clients anywhere.
  comet.changeRoom(comet.channel("e")!, "live://6");
  assert.equal(comet.rooms.size, 3);
});

Deno.test("limits: the connect-rate bucket refills with time, and a bar lasts one window", () => {
  let now = 0;
  const hits = newStats().limitHits;
  const clock = { now: () => now };
  const limits = new Limits(
    { connectRate: 2, maxAuthAttempts: 2, authWindow: 1_000 },
    hits,
    silentLogger,
    clock,
  );
  assert.equal(limits.admit("10.0.0.1", 0), true);
  assert.equal(limits.admit("10.0.0.1", 1), true);
  assert.equal(limits.admit("10.0.0.1", 2), false, "a burst of two, then refused");
  now += 500;
  assert.equal(limits.admit("10.0.0.1", 2), true, "half a second brings one token back");
  limits.authFailed("10.0.0.1");
  limits.authFailed("10.0.0.1");
  now += 999;
  assert.equal(limits.admit("10.0.0.1", 3), false, "barred for one window");
  now += 1;
  assert.equal(limits.admit("10.0.0.1", 3), true);
  assert.deepEqual(hits, { ...hits, connectRate: 1, authAttempts: 1 });
});

for (const t of TRANSPORTS.filter((row) => row.name === "ws" || row.name === "handler")) {
  Deno.test(`limits over ${t.name}: behind a trusted proxy, each forwarded client has its own count`, async () => {
    const seen: string[] = [];
    const operator: Operator = {
      connect({ body, info }) {
        seen.push(info.remoteAddr.hostname);
        return { mid: (JSON.parse(text(body)) as { mid: number }).mid, accepts: [1000] };
      },
    };
    await using hub = await Hub.start(
      { operator, limits: { maxConnectionsPerIp: 1, trustProxy: ["127.0.0.1"] } },
      t,
    );
    const from = (ip: string) => ({ "X-Forwarded-For": `198.51.100.99, ${ip}` });
    // Two clients through the one proxy address: each counted under its own.
    const a = await hub.auth({ mid: 1 }, t, from("203.0.113.1"));
    const b = await hub.auth({ mid: 2 }, t, from("203.0.113.2"));
    assert.deepEqual(seen, ["203.0.113.1", "203.0.113.2"], "the operator sees the client");
    // A second connection of the first client passes the proxy but not its limit.
    const again = await hub.connect(t, from("203.0.113.1"));
    if (t.name === "ws") {
      // The listener reads the proxy's header after accepting: refused as soon as the
      // upgrade names the client, with no auth frame sent.
      const refusal = await again.next();
      assert.deepEqual(
        [refusal.op, text(refusal.body)],
        [Op.DisconnectReply, "limit: too many connections from this address"],
      );
    } else {
      // The handler has the header before the hub sees the connection: refused at once.
      await again.send(Op.Auth, JSON.stringify({ mid: 3 }));
    }
    assert.ok(await again.closedByServer(3_000), "refused for its client's count");
    assert.equal(hub.comet.stats.limitHits.connectionsPerIp, 1);
    assert.deepEqual(seen, ["203.0.113.1", "203.0.113.2"], "refused before the operator");
    // Its count is given back on close: the client may come again.
    await a.leave();
    assert.ok(await until(() => hub.comet.connections === 1));
    await hub.auth({ mid: 4 }, t, from("203.0.113.1"));
    await b.send(Op.Heartbeat);
    assert.equal((await b.next()).op, Op.HeartbeatReply);
  });

  Deno.test(`limits over ${t.name}: a client's own X-Forwarded-For is ignored without --trust-proxy`, async () => {
    await using hub = await Hub.start({ limits: { maxConnectionsPerIp: 1 } }, t);
    await hub.auth({ mid: 1 }, t, { "X-Forwarded-For": "203.0.113.1" });
    // Both are 127.0.0.1: refused at accept (the listener closes before the upgrade's answer).
    const refused = await hub.connect(t, { "X-Forwarded-For": "203.0.113.2" }).then(
      (second) => second.closedByServer(3_000),
      () => true,
    );
    assert.ok(refused, "the second connection from 127.0.0.1 is refused");
    assert.equal(hub.comet.stats.limitHits.connectionsPerIp, 1);
  });
}

for (const t of TRANSPORTS.filter((row) => row.name === "ws" || row.name === "handler")) {
  Deno.test(`limits over ${t.name}: proxied clients opened and closed every way give their per-IP counts back`, async () => {
    let pending: (() => void) | undefined;
    const operator: Operator = {
      connect({ body }) {
        const auth = JSON.parse(text(body)) as { mid: number; refuse?: boolean; wait?: boolean };
        if (auth.refuse) throw new Error("refused");
        const session = { mid: auth.mid, accepts: [1000] };
        if (!auth.wait) return session;
        return new Promise((resolve) => (pending = () => resolve(session)));
      },
    };
    await using hub = await Hub.start(
      { operator, limits: { maxConnectionsPerIp: 1, trustProxy: ["127.0.0.1"] } },
      t,
    );
    const port = hub.served(t).port;
    const via = (ip: string | undefined): Record<string, string> =>
      ip === undefined ? {} : { "X-Forwarded-For": `198.51.100.99, ${ip}` };
    const settled = () => until(() => hub.comet.timers === 0 && hub.comet.handshaking === 0);
    // Clients, the proxy itself among them (no header, or one that names no address).
    const clients = ["203.0.113.1", "2001:db8::1", undefined, "unknown"];
    let mid = 0;
    let seed = 11;
    const pick = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    for (let round = 0; round < 40; round++) {
      const headers = via(clients[pick(clients.length)]);
      switch (pick(7)) {
        case 0: { // Closed before the upgrade.
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          conn.close();
          break;
        }
        case 1: { // Upgraded, closed before auth.
          await (await hub.connect(t, headers)).close();
          break;
        }
        case 2: { // Registered, then gone.
          await (await hub.auth({ mid: ++mid }, t, headers)).leave();
          break;
        }
        case 3: { // A second connection of a registered client: refused for its count.
          const a = await hub.auth({ mid: ++mid }, t, headers);
          const b = await hub.connect(t, headers);
          await b.send(Op.Auth, JSON.stringify({ mid: ++mid }));
          assert.ok(await b.closedByServer(), "over the per-IP limit");
          await a.leave();
          await b.close();
          break;
        }
        case 4: { // Refused by the operator.
          const c = await hub.connect(t, headers);
          await c.send(Op.Auth, JSON.stringify({ mid: ++mid, refuse: true }));
          assert.ok(await c.closedByServer());
          await c.close();
          break;
        }
        case 5: { // Gone while the operator is still answering.
          const c = await hub.connect(t, headers);
          await c.send(Op.Auth, JSON.stringify({ mid: ++mid, wait: true }));
          assert.ok(await until(() => pending !== undefined), "the operator is asked");
          await c.close();
          pending!();
          pending = undefined;
          break;
        }
        default: { // A bad auth frame: a protocol error.
          const c = await hub.connect(t, headers);
          await c.send(Op.Auth, "{");
          assert.ok(await c.closedByServer());
          await c.close();
        }
      }
      assert.ok(await settled(), `round ${round} ends with nothing live`);
    }
    // Every count is back at 0, none below: each client has one connection, and only one.
    const held = [];
    for (const ip of ["203.0.113.1", "2001:db8::1", undefined]) {
      held.push(await hub.auth({ mid: ++mid }, t, via(ip)));
      const again = await hub.connect(t, via(ip));
      await again.send(Op.Auth, JSON.stringify({ mid: ++mid }));
      assert.ok(await again.closedByServer(), `a second from ${ip} is refused`);
    }
    for (const c of held) {
      await c.send(Op.Heartbeat);
      assert.equal((await c.next()).op, Op.HeartbeatReply, "still served");
    }
  });
}
