// The memory cluster (the default) keeps single-node behaviour; the hub's observer hooks;
// the cluster flags of the command line.
import assert from "node:assert/strict";
import { MemoryCluster } from "../src/cluster/memory_cluster.ts";
import { ConfigError, parseConfig } from "../src/config.ts";
import type { LogFields, Logger } from "../src/log.ts";
import { Op } from "../src/protocol/op.ts";
import { Comet } from "../src/server/comet.ts";
import type { CometObserver } from "../src/server/comet_observer.ts";
import { api, startServer, TestClient, text, until } from "./_helpers.ts";
import { VERSION } from "../src/version.ts";

const BIZ = 1000;
const utf8 = new TextEncoder();

async function heartbeatOnline(client: TestClient): Promise<number> {
  const seq = client.sendFrame(Op.Heartbeat);
  const frame = await client.nextOp(Op.HeartbeatReply);
  assert.equal(frame.seq, seq);
  return new DataView(frame.body.buffer, frame.body.byteOffset).getInt32(0);
}

Deno.test("serve() defaults to a memory cluster: pushes, counts and health as before", async () => {
  await using server = startServer({ closeGrace: 200 });
  assert.ok(server.cluster instanceof MemoryCluster);
  assert.equal(server.cluster.nodeId, "local");
  assert.equal(server.cluster.state, "ready");
  const port = server.addrs.tcp!.port;
  await using a = await TestClient.auth(port, {
    mid: 1,
    key: "a",
    room_id: "live://1",
    accepts: [BIZ],
  });
  await using b = await TestClient.auth(port, {
    mid: 1,
    key: "b",
    room_id: "live://1",
    accepts: [BIZ],
  });
  await using c = await TestClient.auth(port, { mid: 2, key: "c", accepts: [BIZ] });

  for (
    const path of [
      `/goim/push/keys?operation=${BIZ}&keys=a&keys=c`,
      `/goim/push/mids?operation=${BIZ}&mids=1`,
      `/goim/push/room?operation=${BIZ}&type=live&room=1`,
      `/goim/push/all?operation=${BIZ}`,
    ]
  ) {
    const res = await api(server, path, { method: "POST", body: path.split("?")[0]! });
    assert.deepEqual(res.body, { code: 0, message: "", data: null });
  }
  const got = async (client: TestClient, n: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(text((await client.nextOp(BIZ)).body));
    assert.ok(await client.silent(100));
    return out;
  };
  const k = "/goim/push/keys", m = "/goim/push/mids", r = "/goim/push/room", all = "/goim/push/all";
  assert.deepEqual(await got(a, 4), [k, m, r, all]);
  assert.deepEqual(await got(b, 3), [m, r, all]);
  assert.deepEqual(await got(c, 2), [k, all]);

  assert.equal(await heartbeatOnline(a), 2);
  assert.deepEqual((await api(server, "/goim/online/room?type=live&rooms=1")).body.data, { 1: 2 });
  assert.deepEqual((await api(server, "/goim/online/total")).body.data, {
    ip_count: 1,
    conn_count: 3,
  });
  // /healthz keeps its single-node answer: no cluster fields.
  assert.deepEqual((await api(server, "/healthz")).body.data, { status: "ok", connections: 3 });

  const instances = (await api(server, "/goim/nodes/instances")).body.data as Record<
    string,
    unknown
  >[];
  assert.equal(instances.length, 1);
  const { updated, ...rest } = instances[0]!;
  assert.ok(typeof updated === "number" && Math.abs(updated - Date.now()) < 5_000);
  assert.deepEqual(rest, {
    id: "local",
    advertise: "127.0.0.1",
    tcp_port: port,
    ws_port: server.addrs.ws!.port,
    wss_port: 0,
    connections: 3,
    ip_count: 1,
    version: VERSION,
  });
});

Deno.test("a memory cluster with its own id; shutdown closes it", async () => {
  const cluster = new MemoryCluster({ nodeId: "solo" });
  const server = startServer({ cluster, domain: "comet.example.com" });
  try {
    const [node] = cluster.nodes();
    assert.equal(node!.id, "solo");
    assert.equal(node!.host, "comet.example.com");
    assert.equal(node!.tcpPort, server.addrs.tcp!.port);
  } finally {
    await server.shutdown();
  }
  assert.equal(cluster.state, "closed");
  assert.throws(() => cluster.attach(new Comet(), _address), TypeError);
});

const _address = { host: "h", tcpPort: 1, wsPort: 0, wssPort: 0 };

Deno.test("MemoryCluster refuses misuse with TypeError and RangeError", async () => {
  assert.throws(() => new MemoryCluster({ nodeId: "" }), TypeError);
  await using cluster = new MemoryCluster();
  await assert.rejects(cluster.pushRoom("r", 1, new Uint8Array()), TypeError);
  assert.throws(() => cluster.roomOnline("r"), /not attached/);
  await using comet = new Comet();
  cluster.attach(comet, _address);
  assert.throws(() => cluster.attach(comet, _address), /already attached/);
  await assert.rejects(cluster.pushAll(1000, new Uint8Array(), { speed: -1 }), RangeError);
  assert.deepEqual(await cluster.pushKeys(["nobody"], 1000, new Uint8Array()), {
    local: 0,
    remote: 0,
    degraded: false,
  });
  assert.deepEqual(cluster.health(), { ok: true, detail: {} });
});

// --- the hub's observer --------------------------------------------------------

Deno.test("the hub tells its observer of sessions, heartbeats and rooms", async () => {
  const events: string[] = [];
  const observer: CometObserver = {
    opened: (ch) => events.push(`opened ${ch.key} ${ch.room}`),
    heartbeat: (ch) => events.push(`heartbeat ${ch.key}`),
    closed: (ch) => events.push(`closed ${ch.key}`),
    roomOpened: (room) => events.push(`+${room}`),
    roomClosed: (room) => events.push(`-${room}`),
    roomOnline: (room) => room === "live://1" ? 1234 : 0,
  };
  await using server = startServer({ observer, closeGrace: 200 });
  const port = server.addrs.tcp!.port;
  const a = await TestClient.auth(port, { key: "a", room_id: "live://1" });
  const b = await TestClient.auth(port, { key: "b", room_id: "live://1" });
  // the cluster-wide count, not this hub's 2
  assert.equal(await heartbeatOnline(a), 1234);
  b.sendFrame(Op.ChangeRoom, "live://2");
  await b.nextOp(Op.ChangeRoomReply);
  await a.close();
  await b.close();
  assert.ok(await until(() => server.comet.connections === 0));
  assert.ok(await until(() => events.length === 9));
  assert.deepEqual(events.slice(0, 5), [
    "+live://1",
    "opened a live://1",
    "opened b live://1",
    "heartbeat a",
    "+live://2", // b moved: live://1 still has a, live://2 is new
  ]);
  // Which socket the server sees close first is up to it; each leaves its room, then closes.
  const a1 = events.indexOf("-live://1");
  const b1 = events.indexOf("-live://2");
  assert.ok(a1 >= 5 && events[a1 + 1] === "closed a", events.join(", "));
  assert.ok(b1 >= 5 && events[b1 + 1] === "closed b", events.join(", "));
});

Deno.test("the hub waits for opening and joining before it replies", async () => {
  const opening = Promise.withResolvers<void>();
  const joining = Promise.withResolvers<void>();
  const seen: string[] = [];
  const observer: CometObserver = {
    opening: (session) => {
      seen.push(`opening ${session.key} ${session.mid} ${session.room}`);
      return opening.promise;
    },
    joining: (ch, room) => {
      seen.push(`joining ${ch.key} ${room}`);
      return joining.promise;
    },
  };
  await using server = startServer({ observer, closeGrace: 200 });
  await using client = await TestClient.connect(server.addrs.tcp!.port);
  client.sendFrame(Op.Auth, JSON.stringify({ mid: 3, key: "k", room_id: "live://1" }));
  assert.ok(await client.silent(100), "the auth reply did not wait");
  // not reachable before the reply either
  assert.equal(server.comet.channel("k"), undefined);
  opening.resolve();
  assert.equal((await client.next()).op, Op.AuthReply);
  assert.equal(server.comet.roomOnline("live://1"), 1);

  client.sendFrame(Op.ChangeRoom, "live://2");
  assert.ok(await client.silent(100), "the room change did not wait");
  assert.equal(server.comet.roomOnline("live://2"), 0);
  joining.resolve();
  assert.equal((await client.next()).op, Op.ChangeRoomReply);
  assert.equal(server.comet.roomOnline("live://2"), 1);
  // Leaving a room, or "moving" to the room it is in, asks nobody.
  client.sendFrame(Op.ChangeRoom, "live://2");
  assert.equal((await client.next()).op, Op.ChangeRoomReply);
  assert.deepEqual(seen, ["opening k 3 live://1", "joining k live://2"]);
});

Deno.test("an observer that throws is logged; the connection carries on", async () => {
  const warnings: string[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (message: string, fields?: LogFields) =>
      void warnings.push(`${message} ${fields?.event ?? ""}`),
    error() {},
  };
  const boom = () => {
    throw new Error("boom");
  };
  await using server = startServer({
    logger,
    closeGrace: 200,
    observer: { opened: boom, heartbeat: boom, roomOnline: () => Number.NaN },
  });
  await using client = await TestClient.auth(server.addrs.tcp!.port, {
    key: "k",
    room_id: "live://1",
  });
  // a count that is not an int32 falls back to the hub's own
  assert.equal(await heartbeatOnline(client), 1);
  server.comet.pushKeys(["k"], BIZ, utf8.encode("x"));
  assert.deepEqual(warnings, ["Observer failed opened", "Observer failed heartbeat"]);
});

// --- flags ---------------------------------------------------------------------

Deno.test("cluster flags: --redis, --node-id, --advertise, --session-ttl, --report-interval", () => {
  const cfg = parseConfig([
    "--redis",
    "redis://:pw@127.0.0.1:6390/2",
    "--node-id",
    "comet-1",
    "--advertise",
    "10.0.0.5",
    "--session-ttl",
    "2s",
    "--report-interval=500ms",
  ]);
  assert.equal(cfg.redis, "redis://:pw@127.0.0.1:6390/2");
  assert.equal(cfg.nodeId, "comet-1");
  assert.equal(cfg.advertise, "10.0.0.5");
  assert.equal(cfg.sessionTtl, 2_000);
  assert.equal(cfg.reportInterval, 500);
  assert.equal(parseConfig(["--advertise", "[::1]"]).advertise, "::1");
  assert.equal(
    parseConfig([], { env: (n) => n === "COMET_REDIS" ? "redis://r:6379" : undefined }).redis,
    "redis://r:6379",
  );
  for (
    const [args, pattern] of [
      [["--redis", "http://:secret@x:1"], /--redis: Redis URL must start with redis:/],
      [["--redis", "nonsense"], /--redis/],
      [["--node-id", "a b"], /--node-id/],
      [["--advertise", "10.0.0.5:3101"], /--advertise: Must be a host name or IP address/],
      [["--session-ttl", "2s"], /^--session-ttl needs --redis$/],
      [["--report-interval", "1s"], /^--report-interval needs --redis$/],
    ] as const
  ) {
    assert.throws(() => parseConfig(args), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, pattern);
      assert.ok(!err.message.includes("secret"), err.message);
      return true;
    });
  }
});
