// The goim push API over real loopback HTTP, with raw goim TCP clients on the other side.
import assert from "node:assert/strict";
import type { ClusterNode } from "../src/cluster/cluster.ts";
import { MemoryCluster } from "../src/cluster/memory_cluster.ts";
import type { LogFields, Logger } from "../src/log.ts";
import { Op } from "../src/protocol/op.ts";
import type { CometServer, ServeOptions } from "../src/serve.ts";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Chromium, findChromium } from "./_chromium.ts";
import { api, startServer, TestClient, text, until, utf8 } from "./_helpers.ts";
import { goimMessages, Opcode, WsClient } from "./_ws_client.ts";
import { VERSION } from "../src/version.ts";

const BIZ = 1000;
const OK = { code: 0, message: "", data: null };

interface RawReply {
  status: number;
  headers: Headers;
  text: string;
  body: { code: number; message: string; data: unknown };
}

/** Fetches from the API and always consumes the body; keeps headers and raw text. */
async function request(
  server: CometServer,
  path: string,
  init: RequestInit = {},
): Promise<RawReply> {
  const res = await fetch(`http://127.0.0.1:${server.addrs.api!.port}${path}`, init);
  const raw = await res.text();
  return { status: res.status, headers: res.headers, text: raw, body: JSON.parse(raw) };
}

/** Sends raw bytes to the API port, half-closes, and returns everything the server wrote back. */
async function rawHttp(server: CometServer, raw: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.api!.port });
  let out = "";
  try {
    await conn.write(utf8.encode(raw));
    await conn.closeWrite();
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      out += text(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
  return out;
}

/** A logger that keeps the error and warn lines. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (message: string, fields?: LogFields) =>
    void lines.push(
      `${level} ${message} ${
        JSON.stringify(fields ?? {}, (_k, v) => v instanceof Error ? v.message : v)
      }`,
    );
  return { lines, debug() {}, info() {}, warn: keep("warn"), error: keep("error") };
}

/** POSTs `body` to a push path. */
function push(
  server: CometServer,
  path: string,
  body: string | Uint8Array<ArrayBuffer>,
  headers: Record<string, string> = {},
): Promise<RawReply> {
  return request(server, path, { method: "POST", body, headers });
}

/** Runs `fn` with a fresh server and shuts it down afterwards, whatever happens. */
async function withServer(
  options: ServeOptions,
  fn: (server: CometServer, tcpPort: number) => Promise<void>,
): Promise<void> {
  const server = startServer({ closeGrace: 200, ...options });
  try {
    await fn(server, server.addrs.tcp?.port ?? 0);
  } finally {
    await server.shutdown();
  }
}

/** Connects authenticated clients; closes them all when the scope ends. */
class Clients implements AsyncDisposable {
  list: TestClient[] = [];
  constructor(readonly port: number) {}
  async add(auth: Record<string, unknown>, hostname = "127.0.0.1"): Promise<TestClient> {
    const c = await TestClient.auth(this.port, auth, hostname);
    this.list.push(c);
    return c;
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.list.map((c) => c.close()));
  }
}

async function expectBody(client: TestClient, op: number, body: string): Promise<void> {
  const f = await client.nextOp(op);
  assert.equal(f.op, op);
  assert.equal(text(f.body), body);
}

// ---------------------------------------------------------------- pushes

Deno.test("push to keys reaches exactly the listed keys that watch the operation", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const a = await clients.add({ key: "a", accepts: [BIZ] });
    const b = await clients.add({ key: "b", accepts: [BIZ] });
    const c = await clients.add({ key: "c", accepts: [BIZ] });
    const other = await clients.add({ key: "d", accepts: [2000] });

    const res = await push(
      server,
      `/goim/push/keys?operation=${BIZ}&keys=a&keys=b&keys=d`,
      "hello",
    );
    assert.equal(res.status, 200);
    assert.equal(res.text, JSON.stringify(OK));
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    await expectBody(a, BIZ, "hello");
    await expectBody(b, BIZ, "hello");
    assert.ok(await c.silent(100), "an unlisted key got the push");
    assert.ok(await other.silent(50), "a key not watching the op got the push");
  });
});

Deno.test("push to keys accepts binary bodies and an empty body", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const a = await clients.add({ key: "a", accepts: [BIZ] });
    const bytes = new Uint8Array([0, 1, 2, 255, 254, 0]);
    assert.deepEqual(
      (await push(server, `/goim/push/keys?operation=${BIZ}&keys=a`, bytes)).body,
      OK,
    );
    assert.deepEqual((await a.nextOp(BIZ)).body, bytes);
    assert.deepEqual((await push(server, `/goim/push/keys?operation=${BIZ}&keys=a`, "")).body, OK);
    assert.equal((await a.nextOp(BIZ)).body.length, 0);
  });
});

Deno.test("push to mids reaches every device of the listed users", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const phone = await clients.add({ mid: 7, key: "7-phone", accepts: [BIZ] });
    const web = await clients.add({ mid: 7, key: "7-web", accepts: [BIZ] });
    const eight = await clients.add({ mid: 8, accepts: [BIZ] });
    const nine = await clients.add({ mid: 9, accepts: [BIZ] });

    const res = await push(server, `/goim/push/mids?operation=${BIZ}&mids=7&mids=8`, "hi users");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, OK);
    for (const c of [phone, web, eight]) await expectBody(c, BIZ, "hi users");
    assert.ok(await nine.silent(100), "an unlisted user got the push");
  });
});

Deno.test("a user or key listed twice in a push gets the message once", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const seven = await clients.add({ mid: 7, accepts: [BIZ] });
    const a = await clients.add({ key: "a", accepts: [BIZ] });
    const res = await push(server, `/goim/push/mids?operation=${BIZ}&mids=7&mids=7,07`, "once");
    assert.deepEqual(res.body, OK);
    await expectBody(seven, BIZ, "once");
    const keys = await push(server, `/goim/push/keys?operation=${BIZ}&keys=a&keys=a,a`, "key once");
    assert.deepEqual(keys.body, OK);
    await expectBody(a, BIZ, "key once");
    assert.ok(await seven.silent(150), "the duplicate mid was pushed twice");
    assert.ok(await a.silent(50), "the duplicate key was pushed twice");
  });
});

Deno.test("push to room reaches the members of type://room only", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    // Room pushes do not need the op to be watched.
    const m1 = await clients.add({ room_id: "live://1000" });
    const m2 = await clients.add({ room_id: "live://1000", accepts: [BIZ] });
    const otherRoom = await clients.add({ room_id: "live://2000" });
    const otherType = await clients.add({ room_id: "sport://1000" });

    const res = await push(server, `/goim/push/room?operation=${BIZ}&type=live&room=1000`, "room!");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, OK);
    await expectBody(m1, BIZ, "room!");
    await expectBody(m2, BIZ, "room!");
    assert.ok(await otherRoom.silent(100));
    assert.ok(await otherType.silent(50));
  });
});

Deno.test("push to all reaches every connection watching the operation", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const watchers = await Promise.all(
      Array.from({ length: 5 }, (_, i) => clients.add({ key: `w${i}`, accepts: [BIZ] })),
    );
    const bystander = await clients.add({ key: "no-watch" });

    const res = await push(server, `/goim/push/all?operation=${BIZ}`, "everyone");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, OK);
    for (const c of watchers) await expectBody(c, BIZ, "everyone");
    assert.ok(await bystander.silent(100));
  });
});

Deno.test("push to all with speed (paced, speed=1000 and speed=0) still delivers", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const watchers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => clients.add({ key: `w${i}`, accepts: [BIZ] })),
    );
    const paced = await push(server, `/goim/push/all?operation=${BIZ}&speed=1000`, "paced");
    assert.equal(paced.status, 200);
    assert.deepEqual(paced.body, OK);
    for (const c of watchers) await expectBody(c, BIZ, "paced");

    const now = await push(server, `/goim/push/all?operation=${BIZ}&speed=0`, "at once");
    assert.deepEqual(now.body, OK);
    for (const c of watchers) await expectBody(c, BIZ, "at once");
  });
});

Deno.test("a paced broadcast still running when the server shuts down leaves nothing behind", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => clients.add({ key: `k${i}`, accepts: [BIZ] })),
    );
    // 40 connections at 1 per second would take ~40 s; shutdown must abort the pacing timers.
    const res = await push(server, `/goim/push/all?operation=${BIZ}&speed=1`, "slow");
    assert.deepEqual(res.body, OK);
  });
});

// ---------------------------------------------------------------- bad requests

Deno.test("missing or invalid parameters answer 400 / -400 naming the parameter", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const victim = await clients.add({ key: "a", mid: 1, room_id: "live://1", accepts: [BIZ] });
    const cases: [method: string, path: string, param: string][] = [
      ["POST", "/goim/push/keys?keys=a", "operation"],
      ["POST", "/goim/push/keys?operation=&keys=a", "operation"],
      ["POST", "/goim/push/keys?operation=abc&keys=a", "operation"],
      ["POST", "/goim/push/keys?operation=1.5&keys=a", "operation"],
      ["POST", "/goim/push/keys?operation=2147483648&keys=a", "operation"],
      ["POST", "/goim/push/keys?operation=-2147483649&keys=a", "operation"],
      ["POST", "/goim/push/keys?operation=99999999999999999999&keys=a", "operation"],
      ["POST", `/goim/push/keys?operation=${BIZ}`, "keys"],
      ["POST", `/goim/push/keys?operation=${BIZ}&keys=`, "keys"],
      ["POST", `/goim/push/mids?operation=${BIZ}`, "mids"],
      ["POST", `/goim/push/mids?operation=${BIZ}&mids=x`, "mids"],
      ["POST", `/goim/push/mids?operation=${BIZ}&mids=-1`, "mids"],
      ["POST", `/goim/push/mids?operation=${BIZ}&mids=1&mids=1e3`, "mids"],
      ["POST", `/goim/push/mids?operation=${BIZ}&mids=9007199254740993`, "mids"],
      ["POST", `/goim/push/mids?mids=1`, "operation"],
      ["POST", `/goim/push/room?operation=${BIZ}&room=1`, "type"],
      ["POST", `/goim/push/room?operation=${BIZ}&type=live`, "room"],
      ["POST", `/goim/push/room?type=live&room=1`, "operation"],
      ["POST", `/goim/push/all`, "operation"],
      ["POST", `/goim/push/all?operation=${BIZ}&speed=fast`, "speed"],
      ["POST", `/goim/push/all?operation=${BIZ}&speed=-1`, "speed"],
      ["GET", "/goim/online/top?type=live", "limit"],
      ["GET", "/goim/online/top?type=live&limit=x", "limit"],
      ["GET", "/goim/online/top?limit=2", "type"],
      ["GET", "/goim/online/room?type=live", "rooms"],
      ["GET", "/goim/online/room?rooms=1", "type"],
    ];
    for (const [method, path, param] of cases) {
      const init: RequestInit = method === "POST" ? { method, body: "bad" } : { method };
      const res = await request(server, path, init);
      assert.equal(res.status, 400, `${method} ${path}: status ${res.status}`);
      assert.equal(res.body.code, -400, `${method} ${path}`);
      assert.equal(res.body.data, null, `${method} ${path}`);
      assert.ok(
        res.body.message.includes(param),
        `${method} ${path}: message ${JSON.stringify(res.body.message)} does not name ${param}`,
      );
    }
    assert.ok(await victim.silent(100), "a rejected push was delivered");
  });
});

Deno.test("unknown path answers 404 / -404; wrong method answers 405 with Allow", async () => {
  await withServer({}, async (server) => {
    for (const path of ["/", "/goim/push", "/goim/push/keys/", "/nope?operation=1"]) {
      const res = await request(server, path, { method: "POST", body: "x" });
      assert.equal(res.status, 404, path);
      assert.equal(res.body.code, -404, path);
    }
    for (
      const path of ["/goim/push/keys", "/goim/push/mids", "/goim/push/room", "/goim/push/all"]
    ) {
      const res = await request(server, `${path}?operation=${BIZ}&keys=a`);
      assert.equal(res.status, 405, path);
      assert.equal(res.headers.get("allow"), "POST", path);
      assert.notEqual(res.body.code, 0);
    }
    for (const path of ["/goim/online/total", "/goim/online/top", "/healthz"]) {
      const res = await request(server, path, { method: "POST", body: "x" });
      assert.equal(res.status, 405, path);
      assert.equal(res.headers.get("allow"), "GET", path);
    }
    // HEAD on a GET route is allowed.
    const head = await fetch(`http://127.0.0.1:${server.addrs.api!.port}/healthz`, {
      method: "HEAD",
    });
    await head.body?.cancel();
    assert.equal(head.status, 200);
  });
});

Deno.test("a push body over maxPushBody answers 413 / -400 and reaches nobody", async () => {
  await withServer({ maxPushBody: 16 }, async (server, port) => {
    await using clients = new Clients(port);
    const a = await clients.add({ key: "a", room_id: "live://1", accepts: [BIZ] });

    const exact = "0123456789abcdef"; // 16 bytes: accepted
    assert.deepEqual(
      (await push(server, `/goim/push/keys?operation=${BIZ}&keys=a`, exact)).body,
      OK,
    );
    await expectBody(a, BIZ, exact);

    const big = exact + "!"; // 17 bytes
    for (const path of ["keys?keys=a&", "mids?mids=0&", "room?type=live&room=1&", "all?"]) {
      const res = await push(server, `/goim/push/${path}operation=${BIZ}`, big);
      assert.equal(res.status, 413, path);
      assert.equal(res.body.code, -400, path);
      assert.match(res.body.message, /16/, path);
    }
    // Without a Content-Length (chunked): the streamed size is checked too.
    const stream = ReadableStream.from([utf8.encode("0123456789"), utf8.encode("abcdefgh")]);
    const chunked = await request(server, `/goim/push/room?operation=${BIZ}&type=live&room=1`, {
      method: "POST",
      body: stream,
    });
    assert.equal(chunked.status, 413);
    assert.equal(chunked.body.code, -400);
    assert.ok(await a.silent(150), "an oversized push was delivered");
  });
});

// ---------------------------------------------------------------- reserved operations

/** The four push paths, to key `key`, user 1, room live://1 and everyone, wanting an operation. */
const pushPaths = (key: string) =>
  [`keys?keys=${key}`, "mids?mids=1", "room?type=live&room=1", "all?"] as const;

Deno.test("a push with one of the protocol's own ops answers 400 / -400 on every push path", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    // Watching them, so that nothing but the API stands between these ops and the client.
    const a = await clients.add({
      key: "a",
      mid: 1,
      room_id: "live://1",
      accepts: [BIZ, 0, 3, 6, 9, 17],
    });
    for (const path of pushPaths("a")) {
      for (const [given, op] of [["0", 0], ["-0", 0], ["3", 3], ["06", 6], ["9", 9], ["17", 17]]) {
        const res = await push(server, `/goim/push/${path}&operation=${given}`, "reserved");
        assert.equal(res.status, 400, `${path} op ${given}`);
        assert.deepEqual(res.body, {
          code: -400,
          message: `Invalid parameter operation: ${op} is reserved by the protocol (0 to 18)`,
          data: null,
        }, `${path} op ${given}`);
      }
    }
    assert.equal(server.comet.stats.deliveries, 0, "a reserved op was queued");
    assert.ok(await a.silent(100), "a reserved op was delivered");
    // The client stays connected and is still served.
    await a.send(Op.Heartbeat);
    assert.equal((await a.next()).op, Op.HeartbeatReply);
    assert.deepEqual(
      (await push(server, `/goim/push/room?operation=${BIZ}&type=live&room=1`, "ok")).body,
      OK,
    );
    await expectBody(a, BIZ, "ok");
  });
});

Deno.test("an op 6 push does not close a WebSocket member that stays counted", async () => {
  await withServer({}, async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.ws!.port });
    await using ws = await WsClient.connect(conn);
    const auth = { mid: 1, key: "w", room_id: "live://1", accepts: [BIZ, Op.DisconnectReply] };
    await ws.send(encodeFrame(Op.Auth, 1, utf8.encode(JSON.stringify(auth))));
    assert.deepEqual(goimMessages((await ws.next())!.payload).map((f) => f.op), [Op.AuthReply]);

    for (const path of pushPaths("w")) {
      const res = await push(server, `/goim/push/${path}&operation=6`, "bye");
      assert.equal(res.status, 400, path);
    }
    // Had op 6 gone out, the next message would be the goodbye and a close frame.
    await ws.send(encodeFrame(Op.Heartbeat, 2));
    const beat = await ws.next();
    assert.equal(beat?.opcode, Opcode.Binary);
    assert.deepEqual(goimMessages(beat!.payload).map((f) => f.op), [Op.HeartbeatReply]);
    assert.deepEqual(
      (await push(server, `/goim/push/keys?operation=${BIZ}&keys=w`, "later")).body,
      OK,
    );
    const later = goimMessages((await ws.next())!.payload);
    assert.deepEqual(later.map((f) => [f.op, text(f.body)]), [[BIZ, "later"]]);
    assert.equal(server.comet.connections, 1);
  });
});

Deno.test("an op 9 push whose body is not frames is refused and a pkg member stays", async () => {
  await withServer({ pkg: { hostname: "127.0.0.1", port: 0, headerSize: 2 } }, async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.pkg!.port });
    try {
      const pkg = (payload: string) => {
        const bytes = utf8.encode(payload);
        const out = new Uint8Array(2 + bytes.length);
        new DataView(out.buffer).setUint16(0, bytes.length);
        out.set(bytes, 2);
        return out;
      };
      await conn.write(
        pkg(JSON.stringify({ mid: 2, key: "p", room_id: "live://2", accepts: [BIZ] })),
      );
      assert.ok(await until(() => server.comet.channel("p") !== undefined));

      const res = await push(server, "/goim/push/room?operation=9&type=live&room=2", "not frames");
      assert.equal(res.status, 400);
      assert.match(res.body.message, /^Invalid parameter operation: 9 is reserved/);
      assert.deepEqual(
        (await push(server, `/goim/push/room?operation=${BIZ}&type=live&room=2`, "still")).body,
        OK,
      );
      // The first package back is that push: the refused one never reached the wire.
      const buf = new Uint8Array(64);
      let got = 0;
      while (got < 2 + 5) {
        const n = await conn.read(buf.subarray(got));
        assert.notEqual(n, null, "the server closed the pkg connection");
        got += n!;
      }
      assert.deepEqual(buf.subarray(0, got), pkg("still"));
      assert.ok(server.comet.channel("p") !== undefined);
    } finally {
      conn.close();
    }
  });
});

Deno.test("ops outside 0 to 18 still push: 19, 999, negative and the int32 ends", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const ops = [19, 999, -1, 0x7fffffff, -0x80000000];
    const a = await clients.add({ key: "a", accepts: ops });
    for (const op of ops) {
      assert.deepEqual(
        (await push(server, `/goim/push/keys?operation=${op}&keys=a`, `op ${op}`)).body,
        OK,
      );
      await expectBody(a, op, `op ${op}`);
    }
  });
});

// ---------------------------------------------------------------- token

Deno.test("with apiToken every path needs the exact bearer token", async () => {
  await withServer({ apiToken: "s3cret" }, async (server, port) => {
    await using clients = new Clients(port);
    const a = await clients.add({ key: "a", accepts: [BIZ] });
    const path = `/goim/push/keys?operation=${BIZ}&keys=a`;
    const bad: (Record<string, string>)[] = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: "Bearer s3cre" },
      { authorization: "Bearer s3cretx" },
      { authorization: "Bearer s3cret junk" },
      { authorization: "Basic s3cret" },
      { authorization: "s3cret" },
      { authorization: "Bearer" },
    ];
    for (const headers of bad) {
      for (const p of [path, "/healthz", "/goim/online/total", "/nowhere"]) {
        const res = await request(server, p, {
          method: p === path ? "POST" : "GET",
          headers,
          body: p === path ? "x" : null,
        });
        assert.equal(res.status, 401, `${p} ${JSON.stringify(headers)}`);
        assert.equal(res.body.code, -401);
        assert.equal(res.headers.get("www-authenticate"), "Bearer");
      }
    }
    assert.ok(await a.silent(100), "an unauthorized push was delivered");

    const good = { authorization: "Bearer s3cret" };
    const res = await push(server, path, "authorized", good);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, OK);
    await expectBody(a, BIZ, "authorized");
    // The scheme is case-insensitive and may be followed by several spaces (RFC 6750).
    for (const authorization of ["bearer s3cret", "BEARER s3cret", "Bearer   s3cret"]) {
      const r = await push(server, path, authorization, { authorization });
      assert.equal(r.status, 200, authorization);
      await expectBody(a, BIZ, authorization);
    }
    const health = await request(server, "/healthz", { headers: good });
    assert.equal(health.status, 200);
    assert.equal((health.body.data as { status: string }).status, "ok");
  });
});

Deno.test("without apiToken no Authorization is needed", async () => {
  await withServer({}, async (server) => {
    const res = await request(server, "/healthz", {
      headers: { authorization: "Bearer whatever" },
    });
    assert.equal(res.status, 200);
  });
});

// ---------------------------------------------------------------- cross-origin

/** Headers a browser sends with a request from a page that is not this server's. */
const FOREIGN: Record<string, string>[] = [
  { origin: "https://evil.example", "sec-fetch-site": "cross-site" },
  { origin: "https://evil.example" }, // a browser without Fetch Metadata
  { "sec-fetch-site": "cross-site" },
  { origin: "http://admin.comet.example", "sec-fetch-site": "same-site" }, // another subdomain
  { origin: "null" }, // a sandboxed frame, a file: or data: page
  { origin: "null", "sec-fetch-site": "cross-site" },
  { origin: "http://127.0.0.1:1" }, // another port is another origin
  { origin: "file://" },
];

Deno.test("a cross-origin push is refused with 403 on every state-changing path", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const a = await clients.add({ key: "a", mid: 1, room_id: "live://1", accepts: [BIZ] });
    const paths = [
      ...pushPaths("a").map((p) => `/goim/push/${p}&operation=${BIZ}`),
      "/goim/online/total", // a GET route: 405 to others, 403 to a foreign page
      "/nowhere",
    ];
    for (const headers of FOREIGN) {
      for (const path of paths) {
        for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
          const res = await request(server, path, { method, headers, body: "cross" });
          const what = `${method} ${path} ${JSON.stringify(headers)}`;
          assert.equal(res.status, 403, what);
          const shown = headers.origin ?? `Sec-Fetch-Site ${headers["sec-fetch-site"]}`;
          assert.deepEqual(res.body, {
            code: -403,
            message: `Forbidden: cross-origin request: ${shown}`,
            data: null,
          }, what);
        }
      }
    }
    assert.equal(server.comet.stats.deliveries, 0);
    assert.ok(await a.silent(100), "a cross-origin push was delivered");
  });
});

Deno.test("a cross-origin push is refused with a valid token too", async () => {
  await withServer({ apiToken: "s3cret" }, async (server, port) => {
    await using clients = new Clients(port);
    const a = await clients.add({ key: "a", accepts: [BIZ] });
    const path = `/goim/push/keys?operation=${BIZ}&keys=a`;
    for (const headers of FOREIGN) {
      for (const authorization of ["Bearer s3cret", "Bearer wrong"]) {
        const res = await push(server, path, "x", { ...headers, authorization });
        assert.equal(res.status, 403, JSON.stringify(headers));
        assert.equal(res.body.code, -403);
      }
    }
    assert.ok(await a.silent(100), "a cross-origin push was delivered");
    assert.deepEqual(
      (await push(server, path, "mine", { authorization: "Bearer s3cret" })).body,
      OK,
    );
    await expectBody(a, BIZ, "mine");
  });
});

Deno.test("pushes without Origin, from this origin or same-origin per Sec-Fetch-Site go through", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const a = await clients.add({ key: "a", accepts: [BIZ] });
    const own = `127.0.0.1:${server.addrs.api!.port}`;
    const allowed: Record<string, string>[] = [
      {}, // curl, goim's tools, another server
      { "user-agent": "Go-http-client/1.1", "content-type": "application/octet-stream" },
      { origin: `http://${own}` },
      { origin: `http://${own}`, "sec-fetch-site": "same-origin" },
      // Behind a proxy that ends TLS the page is https; the host is what counts.
      { origin: `https://${own}` },
      { origin: `HTTP://${own.toUpperCase()}` },
      // The browser says same-origin even where a proxy rewrote Host.
      { origin: "https://comet.example", "sec-fetch-site": "same-origin" },
      { "sec-fetch-site": "none" },
    ];
    for (const headers of allowed) {
      const body = JSON.stringify(headers);
      const res = await push(server, `/goim/push/keys?operation=${BIZ}&keys=a`, body, headers);
      assert.equal(res.status, 200, body);
      assert.deepEqual(res.body, OK, body);
      await expectBody(a, BIZ, body);
    }
    // Reads are not refused: a foreign page cannot read the answer without CORS anyway.
    for (const headers of FOREIGN) {
      const res = await request(server, "/goim/online/total", { headers });
      assert.equal(res.status, 200, JSON.stringify(headers));
    }
  });
});

Deno.test("the Origin is checked against the Host the request names", async () => {
  await withServer({}, async (server) => {
    const post = (host: string, origin: string) =>
      rawHttp(
        server,
        `POST /goim/push/all?operation=${BIZ} HTTP/1.1\r\nHost: ${host}\r\nOrigin: ${origin}\r\n` +
          "Content-Length: 0\r\n\r\n",
      );
    assert.match(await post("comet.example", "https://comet.example"), /^HTTP\/1\.1 200 /);
    assert.match(await post("comet.example:443", "https://comet.example"), /^HTTP\/1\.1 200 /);
    assert.match(await post("Comet.Example:8080", "http://comet.example:8080"), /^HTTP\/1\.1 200 /);
    assert.match(await post("comet.example", "https://comet.example.evil"), /^HTTP\/1\.1 403 /);
    assert.match(await post("comet.example:8080", "http://comet.example"), /^HTTP\/1\.1 403 /);
    assert.match(await post("a b", "http://a b"), /^HTTP\/1\.1 403 /);
  });
});

Deno.test({
  name: "in chromium, another origin's page cannot push through a no-cors fetch or a form",
  ignore: findChromium() === undefined,
  async fn() {
    await withServer({}, async (server, port) => {
      await using clients = new Clients(port);
      const a = await clients.add({ key: "a", accepts: [BIZ] });
      const apiOrigin = `http://127.0.0.1:${server.addrs.api!.port}`;
      const target = `${apiOrigin}/goim/push/keys?operation=${BIZ}&keys=a`;
      const post = (init: string) => `fetch(${JSON.stringify(target)}, ${init})`;
      const page = `<!doctype html><meta charset="utf-8">
<form method="post" action="${target}" target="sink"><input name="m" value="form"></form>
<iframe name="sink" onload="window.loads = (window.loads ?? 0) + 1"></iframe>`;
      const other = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen() {} },
        () => new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } }),
      );
      try {
        await using browser = await Chromium.launch();
        const tab = await browser.newPage(`http://127.0.0.1:${other.addr.port}/`);
        const type = await tab.evaluate<string>(
          post(`{ method: "POST", mode: "no-cors", body: "fetch" }`) + ".then((r) => r.type)",
        );
        assert.equal(type, "opaque", "the request was sent");
        await tab.evaluate("window.loads = 0; document.forms[0].submit()");
        // The answer, refused or not, loads into the frame.
        await tab.waitFor("window.loads >= 1");
        assert.ok(await a.silent(300), "a cross-origin page pushed");
        assert.equal(server.comet.stats.pushes.keys, 0);

        // The control: the same fetch from a page of the API's own origin goes through.
        const own = await browser.newPage(`${apiOrigin}/admin`);
        const status = await own.evaluate<number>(
          post(`{ method: "POST", body: "same" }`) + ".then((r) => r.status)",
        );
        assert.equal(status, 200);
        await expectBody(a, BIZ, "same");
      } finally {
        await other.shutdown();
      }
    });
  },
});

// ---------------------------------------------------------------- online figures

Deno.test("online/top lists the fullest rooms of one type, fullest first, limited", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    const rooms = [
      ["live://1", 3],
      ["live://2", 2],
      ["live://3", 1],
      ["sport://9", 5],
      ["lives://8", 4],
    ] as const;
    for (const [room, n] of rooms) {
      for (let i = 0; i < n; i++) await clients.add({ room_id: room });
    }
    const top2 = await request(server, "/goim/online/top?type=live&limit=2");
    assert.equal(top2.status, 200);
    assert.deepEqual(top2.body, {
      code: 0,
      message: "",
      data: [{ room_id: "1", count: 3 }, { room_id: "2", count: 2 }],
    });
    const all = await request(server, "/goim/online/top?type=live&limit=10");
    assert.deepEqual(all.body.data, [
      { room_id: "1", count: 3 },
      { room_id: "2", count: 2 },
      { room_id: "3", count: 1 },
    ]);
    assert.deepEqual((await request(server, "/goim/online/top?type=live&limit=0")).body.data, []);
    assert.deepEqual((await request(server, "/goim/online/top?type=none&limit=5")).body.data, []);
    assert.deepEqual((await request(server, "/goim/online/top?type=sport&limit=5")).body.data, [
      { room_id: "9", count: 5 },
    ]);
  });
});

Deno.test("online/room reports each asked room's count, 0 for empty ones", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    for (let i = 0; i < 3; i++) await clients.add({ room_id: "live://1" });
    for (let i = 0; i < 2; i++) await clients.add({ room_id: "live://2" });
    await clients.add({ room_id: "sport://9" });

    const res = await request(server, "/goim/online/room?type=live&rooms=1&rooms=2&rooms=9");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { code: 0, message: "", data: { "1": 3, "2": 2, "9": 0 } });

    // A room id that is also an Object.prototype name is reported like any other.
    const odd = await request(server, "/goim/online/room?type=live&rooms=__proto__&rooms=toString");
    assert.equal(odd.status, 200);
    const data = odd.body.data as Record<string, unknown>;
    assert.ok(Object.hasOwn(data, "__proto__"), odd.text);
    assert.equal(data["__proto__"], 0);
    assert.equal(data["toString"], 0);
  });
});

Deno.test("online/total counts authenticated connections and distinct IPs", async () => {
  await withServer({}, async (server, port) => {
    const total = () => request(server, "/goim/online/total");
    assert.deepEqual((await total()).body, {
      code: 0,
      message: "",
      data: { ip_count: 0, conn_count: 0 },
    });
    await using clients = new Clients(port);
    for (let i = 0; i < 4; i++) await clients.add({ mid: i });
    // A connection still in its handshake is not counted.
    await using pending = await TestClient.connect(port);
    assert.deepEqual((await total()).body.data, { ip_count: 1, conn_count: 4 });

    await clients.list.pop()!.close();
    assert.ok(await until(() => server.comet.connections === 3));
    assert.deepEqual((await total()).body.data, { ip_count: 1, conn_count: 3 });
    await pending.close();
  });
});

Deno.test("online/total counts IPv4 and IPv6 loopback clients as two IPs", async () => {
  // Linux gives every loopback IPv4 connection the source 127.0.0.1 and Deno.connect cannot
  // choose its source, so a dual-stack listener is the way to get a second address (::1).
  let server: CometServer;
  try {
    server = startServer({ tcp: { hostname: "::", port: 0 }, closeGrace: 200 });
  } catch (err) {
    console.warn("skipping: cannot listen on ::", err);
    return;
  }
  try {
    await using clients = new Clients(server.addrs.tcp!.port);
    await clients.add({ mid: 1 }, "127.0.0.1");
    await clients.add({ mid: 2 }, "::1");
    await clients.add({ mid: 3 }, "::1");
    const res = await request(server, "/goim/online/total");
    assert.deepEqual(res.body.data, { ip_count: 2, conn_count: 3 });
  } finally {
    await server.shutdown();
  }
});

// ---------------------------------------------------------------- nodes and health

Deno.test("nodes/weighted reports domain, ports, heartbeat and nodes per platform", async () => {
  await withServer({ heartbeatTimeout: 60_000 }, async (server, port) => {
    const web = await request(server, "/goim/nodes/weighted?platform=web");
    assert.equal(web.status, 200);
    assert.equal(web.body.code, 0);
    const w = web.body.data as Record<string, unknown>;
    assert.equal(w.domain, "127.0.0.1");
    assert.equal(w.tcp_port, port);
    assert.equal(w.ws_port, server.addrs.ws!.port);
    assert.equal(w.wss_port, 0);
    assert.equal(w.heartbeat, 30);
    assert.equal(w.heartbeat_max, 2);
    assert.deepEqual(w.nodes, ["127.0.0.1"]);

    for (const platform of ["android", "ios", ""]) {
      const res = await request(server, `/goim/nodes/weighted?platform=${platform}`);
      const d = res.body.data as Record<string, unknown>;
      assert.equal(d.tcp_port, port);
      assert.deepEqual(d.nodes, [`127.0.0.1:${port}`], platform);
    }
  });
});

Deno.test("nodes/weighted uses the configured domain", async () => {
  await withServer({ domain: "comet.example.com" }, async (server, port) => {
    const web = (await request(server, "/goim/nodes/weighted?platform=web")).body.data;
    const app = (await request(server, "/goim/nodes/weighted?platform=android")).body.data;
    assert.equal((web as { domain: string }).domain, "comet.example.com");
    assert.deepEqual((web as { nodes: string[] }).nodes, ["comet.example.com"]);
    assert.deepEqual((app as { nodes: string[] }).nodes, [`comet.example.com:${port}`]);
  });
});

Deno.test("nodes/weighted brackets an IPv6 TCP host in host:port", async () => {
  let server: CometServer;
  try {
    server = startServer({ tcp: { hostname: "::1", port: 0 }, closeGrace: 200 });
  } catch (err) {
    console.warn("skipping: cannot listen on ::1", err);
    return;
  }
  try {
    const port = server.addrs.tcp!.port;
    const app = (await request(server, "/goim/nodes/weighted?platform=android")).body.data;
    assert.deepEqual((app as { nodes: string[] }).nodes, [`[::1]:${port}`]);
    // and the advertised address is one a client can dial
    await using _c = await TestClient.auth(port, { mid: 1 }, "::1");
    assert.equal(server.comet.connections, 1);
  } finally {
    await server.shutdown();
  }
});

Deno.test("healthz answers 200 with status ok", async () => {
  await withServer({}, async (server, port) => {
    await using clients = new Clients(port);
    await clients.add({ mid: 1 });
    const res = await request(server, "/healthz");
    assert.equal(res.status, 200);
    assert.equal(res.body.code, 0);
    assert.deepEqual(res.body.data, { status: "ok", connections: 1 });
  });
});

// ---------------------------------------------------------------- robustness

Deno.test("the API keeps serving after a burst of bad requests", async () => {
  const logger = recordingLogger();
  await withServer({ maxPushBody: 64, logger }, async (server, port) => {
    await using clients = new Clients(port);
    const a = await clients.add({ key: "a", accepts: [BIZ] });
    const apiPort = server.addrs.api!.port;

    const badFetches = Array.from({ length: 150 }, (_, i) => {
      const paths = [
        "/goim/push/keys?operation=zz&keys=a",
        "/goim/push/mids?operation=1000&mids=-5",
        "/goim/push/room?operation=1000",
        "/goim/push/all?operation=1000",
        "/goim/online/top?type=live&limit=-1",
        "/%%%",
      ];
      const path = paths[i % paths.length]!;
      const body = i % paths.length === 3 ? "x".repeat(1000) : "bad";
      return request(server, path, { method: "POST", body }).then((r) => r.status);
    });
    // Malformed HTTP straight on the socket.
    const garbage = [
      "NOT HTTP AT ALL\r\n\r\n",
      "POST /goim/push/keys HTTP/1.1\r\nContent-Length: banana\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      "\x00\x01\x02\x03\xff\xfe\r\n\r\n",
      "POST /goim/push/all?operation=1000 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
      "POST /goim/push/all?operation=zz HTTP/1.1\r\nHost: a b\r\nContent-Length: 1\r\n\r\nx",
      "POST /goim/push/all?operation=1000 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    const badSockets = Array.from({ length: 50 }, async (_, i) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: apiPort });
      try {
        await conn.write(utf8.encode(garbage[i % garbage.length]!));
        // Half-close so a server waiting for more body bytes sees the end.
        await conn.closeWrite();
        const buf = new Uint8Array(4096);
        while ((await conn.read(buf)) !== null) { /* drain until the server closes */ }
      } catch {
        // reset: fine
      } finally {
        conn.close();
      }
    });
    const statuses = await Promise.all(badFetches);
    await Promise.all(badSockets);
    assert.ok(statuses.every((s) => s >= 400 && s < 500), `unexpected statuses ${statuses}`);
    assert.ok(await a.silent(50), "a bad request was delivered");

    const res = await push(server, `/goim/push/keys?operation=${BIZ}&keys=a`, "still alive");
    assert.deepEqual(res.body, OK);
    await expectBody(a, BIZ, "still alive");
    assert.equal((await request(server, "/healthz")).status, 200);
    assert.deepEqual(logger.lines.filter((l) => l.startsWith("error")), []);
  });
});

Deno.test("a Host header the URL parser refuses does not make a server error", async () => {
  const logger = recordingLogger();
  await withServer({ logger }, async (server, port) => {
    await using clients = new Clients(port);
    const a = await clients.add({ key: "a", accepts: [BIZ] });
    for (const host of ["a b", "[bad", "x:99999"]) {
      const health = await rawHttp(server, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      assert.match(health, /^HTTP\/1\.1 200 /, host);
      const missing = await rawHttp(
        server,
        `GET /goim/online/top?type=x HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
      );
      assert.match(missing, /^HTTP\/1\.1 400 /, host);
      assert.match(missing, /Missing parameter: limit/, host);
    }
    const pushed = await rawHttp(
      server,
      `POST /goim/push/keys?operation=${BIZ}&keys=a HTTP/1.1\r\nHost: a b\r\nContent-Length: 2\r\n\r\nhi`,
    );
    assert.match(pushed, /^HTTP\/1\.1 200 /);
    await expectBody(a, BIZ, "hi");
    assert.deepEqual(logger.lines, []);
  });
});

Deno.test("shutdown sends op 6 to every client, closes them and the API port", async () => {
  const server = startServer({ closeGrace: 200 });
  const port = server.addrs.tcp!.port;
  const apiPort = server.addrs.api!.port;
  try {
    await using clients = new Clients(port);
    const members = await Promise.all(
      Array.from(
        { length: 5 },
        (_, i) => clients.add({ key: `c${i}`, room_id: "live://1", accepts: [BIZ] }),
      ),
    );
    // A push queued right before shutdown is flushed ahead of the goodbye.
    assert.deepEqual(
      (await push(server, `/goim/push/room?operation=${BIZ}&type=live&room=1`, "last")).body,
      OK,
    );
    await server.shutdown();
    for (const c of members) {
      const frames = [];
      for (;;) {
        const f = await c.next();
        frames.push(f);
        if (f.op === Op.DisconnectReply) break;
      }
      assert.deepEqual(frames.map((f) => f.op), [BIZ, Op.DisconnectReply]);
      assert.equal(text(frames[0]!.body), "last");
      assert.ok(await c.closedByServer(), "the server did not close the connection");
    }
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: apiPort }));
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
    assert.equal(server.comet.connections, 0);
  } finally {
    await server.shutdown();
  }
});

Deno.test("healthz answers 503 while the hub is stopping", async () => {
  await withServer({}, async (server) => {
    await server.comet.close(100);
    const res = await request(server, "/healthz");
    assert.equal(res.status, 503);
    assert.equal((res.body.data as { status: string }).status, "stopping");
  });
});

Deno.test("pushes answer 503 while the hub is stopping", async () => {
  await withServer({}, async (server) => {
    await server.comet.close(100);
    for (const path of ["keys?keys=a", "mids?mids=1", "room?type=live&room=1", "all?x=1"]) {
      const res = await request(server, `/goim/push/${path}&operation=1000`, {
        method: "POST",
        body: "late",
      });
      assert.equal(res.status, 503, path);
      assert.equal(res.body.code, -503, path);
    }
  });
});

// Used by the envelope helper of the other suites; keep it exercised here too.
Deno.test("the api() helper parses the envelope", async () => {
  await withServer({}, async (server) => {
    const { status, body } = await api(server, "/goim/online/total");
    assert.equal(status, 200);
    assert.deepEqual(body.data, { ip_count: 0, conn_count: 0 });
  });
});

Deno.test("shutdown is not held up by a push whose body stalls", async () => {
  const logger = recordingLogger();
  const server = startServer({ closeGrace: 100, shutdownTimeout: 300, logger });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addrs.api!.port });
  try {
    await conn.write(utf8.encode(
      `POST /goim/push/all?operation=${BIZ} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc`,
    ));
    // Give the request time to reach the handler: poll the API on another connection.
    assert.equal((await request(server, "/healthz")).status, 200);
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<string>((r) => (watchdog = setTimeout(() => r("hung"), 5000)));
    const outcome = await Promise.race([server.shutdown().then(() => "done"), hung]);
    clearTimeout(watchdog);
    assert.equal(outcome, "done", "shutdown waited for the stalled upload");
    // The stalled push was answered 503 rather than left hanging.
    const buf = new Uint8Array(4096);
    let reply = "";
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      reply += text(buf.subarray(0, n));
      if (reply.includes("}")) break;
    }
    assert.match(reply, /^HTTP\/1\.1 503/);
    assert.match(reply, /"code":-503/);
    assert.match(reply, /connection: close/i);
    assert.equal(server.comet.stats.pushes.all, 0);
    // Answered, the connection is closed then and there: nothing is left for the timeout to cut.
    assert.equal(await conn.read(buf).catch(() => null), null);
    assert.deepEqual(logger.lines.filter((l) => l.includes("API shutdown timed out")), []);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

/** A one-node cluster that also lists a node whose report came from a Comet without versions. */
class WithOldNode extends MemoryCluster {
  override nodes(): ClusterNode[] {
    const [self] = super.nodes();
    const { version: _, ...old } = self!;
    return [self!, { ...old, id: "old", connections: 0, ipCount: 0 }];
  }
}

Deno.test("nodes/instances gives each node's version, null for a node that reports none", async () => {
  await using server = startServer({ cluster: new WithOldNode({ nodeId: "new" }) });
  const res = await request(server, "/goim/nodes/instances");
  assert.equal(res.status, 200);
  const nodes = res.body.data as { id: string; version: string | null }[];
  assert.deepEqual(nodes.map((n) => [n.id, n.version]), [["new", VERSION], ["old", null]]);
});
