// RedisClient and RedisSubscriber against a real redis-server (tests/_redis.ts), plus a few
// fake servers on loopback for what a real one will not do. Server tests are ignored when
// redis-server is not installed; .ci/install_redis.sh installs it.
import assert from "node:assert/strict";
import {
  parseRedisUrl,
  RedisClient,
  RedisConnectionError,
  type RedisState,
  RedisSubscriber,
} from "../src/cluster/redis_client.ts";
import { RedisError, type RedisReply, replyText } from "../src/cluster/resp.ts";
import { ProtocolError } from "../src/protocol/protocol_error.ts";
import { freePort, redisAvailable, startRedis } from "./_redis.ts";
import { makeCertificate, opensslAvailable } from "./_tls.ts";

const utf8 = new TextEncoder();
const text = (data: Uint8Array) => new TextDecoder().decode(data);
const ignore = !redisAvailable;
const fast = { reconnect: { initialDelay: 20, maxDelay: 200 } };

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, what: string, timeout = 5000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await delay(5);
  }
}

interface Stateful {
  readonly state: RedisState;
  onState(listener: (change: { state: RedisState }) => void): () => void;
}

function waitForState(target: Stateful, state: RedisState, timeout = 5000): Promise<void> {
  if (target.state === state) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`Timed out waiting for state ${state}: still ${target.state}`));
    }, timeout);
    const off = target.onState((change) => {
      if (change.state !== state) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

function isConnectionError(pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof RedisConnectionError, `not a RedisConnectionError: ${err}`);
    assert.match(err.message, pattern);
    return true;
  };
}

// --- no server needed ----------------------------------------------------------

Deno.test("parseRedisUrl reads host, port, login and database", () => {
  assert.deepEqual(parseRedisUrl("redis://127.0.0.1"), {
    hostname: "127.0.0.1",
    port: 6379,
    tls: false,
    db: 0,
  });
  assert.deepEqual(parseRedisUrl("redis://:p%40ss@redis.local:6380/2"), {
    hostname: "redis.local",
    port: 6380,
    tls: false,
    db: 2,
    password: "p@ss",
  });
  assert.deepEqual(parseRedisUrl("rediss://comet:pw@[::1]:7000/"), {
    hostname: "::1",
    port: 7000,
    tls: true,
    db: 0,
    username: "comet",
    password: "pw",
  });
});

Deno.test("parseRedisUrl rejects unusable URLs without echoing passwords", () => {
  for (
    const url of [
      "not a url",
      "http://127.0.0.1:6379",
      "redis:///0",
      "redis://h/abc",
      "redis://h/-1",
      "redis://h?db=1",
      "redis://user@h",
    ]
  ) {
    assert.throws(() => parseRedisUrl(url), TypeError, url);
  }
  assert.throws(() => parseRedisUrl("http://:secret@h"), (err: unknown) => {
    assert.ok(err instanceof TypeError);
    assert.doesNotMatch(err.message, /secret/);
    return true;
  });
});

Deno.test("RedisClient checks its options before connecting", () => {
  assert.throws(() => new RedisClient("redis://127.0.0.1:1", { connectTimeout: 0 }), RangeError);
  assert.throws(
    () => new RedisClient("redis://127.0.0.1:1", { reconnect: { initialDelay: 10, maxDelay: 5 } }),
    RangeError,
  );
  assert.throws(() => new RedisClient("redis://127.0.0.1:1", { maxBulkLength: -1 }), RangeError);
  assert.throws(() => new RedisSubscriber("mysql://127.0.0.1"), TypeError);
});

Deno.test("connecting to a closed port fails at once with a clear error", async () => {
  const port = freePort();
  const started = Date.now();
  await assert.rejects(
    RedisClient.connect(`redis://127.0.0.1:${port}`, fast),
    isConnectionError(new RegExp(`^Cannot connect to Redis at 127\\.0\\.0\\.1:${port}: `)),
  );
  await assert.rejects(
    RedisSubscriber.connect(`redis://127.0.0.1:${port}`, fast),
    isConnectionError(/Cannot connect to Redis/),
  );
  assert.ok(Date.now() - started < 2000, "the first connect must not retry");
});

Deno.test("connecting to a server that never answers times out", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  try {
    await assert.rejects(
      RedisClient.connect(`redis://127.0.0.1:${listener.addr.port}`, { connectTimeout: 100 }),
      isConnectionError(/^Connecting to Redis timed out: .* within 100 ms$/),
    );
  } finally {
    listener.close();
    await accepting;
    for (const conn of accepted) conn.close();
  }
});

Deno.test("a malformed reply closes the connection with a protocol error", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(1024);
    try {
      await conn.read(buffer); // PING
      await conn.write(utf8.encode("+PONG\r\n"));
      await conn.read(buffer); // GET
      await conn.write(utf8.encode("+OK\r\n:1\r\n?what is this\r\n"));
      while (await conn.read(buffer) !== null) { /* until the client hangs up */ }
    } catch {
      // The client closing first is fine.
    } finally {
      conn.close();
    }
  })();
  try {
    const client = await RedisClient.connect(`redis://127.0.0.1:${listener.addr.port}`, {
      reconnect: false,
    });
    const [first, second, third] = await Promise.allSettled([
      client.command("GET", "a"),
      client.command("GET", "b"),
      client.command("GET", "c"),
    ]);
    assert.deepEqual(first, { status: "fulfilled", value: "OK" });
    assert.deepEqual(second, { status: "fulfilled", value: 1 });
    assert.equal(third.status, "rejected");
    const reason = (third as PromiseRejectedResult).reason;
    assert.ok(reason instanceof RedisConnectionError);
    assert.match(reason.message, /^Redis sent a malformed reply: Unknown reply type: "\?"$/);
    assert.ok(reason.cause instanceof ProtocolError);
    await waitForState(client, "closed");
    await client.close();
  } finally {
    await serving;
    listener.close();
  }
});

// --- against redis-server -----------------------------------------------------

Deno.test({
  name: "SET and GET are binary-safe, large values included",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using client = await RedisClient.connect(redis.url);
    assert.equal(client.state, "ready");
    const key = new Uint8Array([0, 13, 10, 255, 36, 42]);
    const value = new Uint8Array(256).map((_, i) => i);
    assert.equal(await client.command("SET", key, value), "OK");
    assert.deepEqual(await client.command("GET", key), value);
    assert.equal(await client.command("SET", "empty", ""), "OK");
    assert.deepEqual(await client.command("GET", "empty"), new Uint8Array(0));
    assert.equal(await client.command("GET", "missing"), null);
    const big = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => (i * 31) & 255);
    await client.command("SET", "big", big);
    assert.deepEqual(await client.command("GET", "big"), big);
    assert.equal(await client.command("STRLEN", "big"), big.length);
    assert.equal(replyText(await client.command("ECHO", "héllo ✓")), "héllo ✓");
    assert.deepEqual(await client.command("MGET", key, "missing", "empty"), [
      value,
      null,
      new Uint8Array(0),
    ]);
  },
});

Deno.test({
  name: "10,000 pipelined INCRs resolve in order",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using client = await RedisClient.connect(redis.url);
    const count = 10_000;
    const replies = await Promise.all(
      Array.from({ length: count }, () => client.command("INCR", "counter")),
    );
    assert.deepEqual(replies, Array.from({ length: count }, (_, i) => i + 1));
    assert.deepEqual(await client.command("GET", "counter"), utf8.encode(String(count)));
  },
});

Deno.test({
  name: "AUTH with a password or user and password, and SELECT of the URL's database",
  ignore,
  async fn() {
    const password = "p@ss word";
    await using redis = await startRedis({ password });
    const base = `127.0.0.1:${redis.port}`;
    const secret = encodeURIComponent(password);

    await using db3 = await RedisClient.connect(`${redis.url}/3`);
    await db3.command("SET", "where", "db3");
    assert.match(replyText(await db3.command("CLIENT", "INFO"))!, / db=3 /);

    await using db0 = await RedisClient.connect(`redis://default:${secret}@${base}/0`);
    assert.equal(await db0.command("GET", "where"), null);
    assert.equal(replyText(await db0.command("ACL", "WHOAMI")), "default");

    await using again = await RedisClient.connect(`redis://:${secret}@${base}/3`);
    assert.equal(replyText(await again.command("GET", "where")), "db3");

    await assert.rejects(
      RedisClient.connect(`redis://:wrong@${base}`),
      (err: unknown) => {
        assert.ok(err instanceof RedisConnectionError);
        assert.match(err.message, /^Redis refused the connection: WRONGPASS /);
        assert.ok(err.cause instanceof RedisError);
        assert.equal(err.cause.code, "WRONGPASS");
        assert.doesNotMatch(err.message, /wrong/);
        return true;
      },
    );
    await assert.rejects(
      RedisClient.connect(`redis://${base}`),
      isConnectionError(/^Redis refused the connection: NOAUTH /),
    );
    await assert.rejects(
      RedisSubscriber.connect(`redis://:wrong@${base}`),
      isConnectionError(/WRONGPASS/),
    );
  },
});

Deno.test({
  name: "error replies reject with RedisError and leave the connection working",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using client = await RedisClient.connect(redis.url);
    await client.command("SET", "s", "text");
    const [incr, get, unknown, push, ping] = await Promise.allSettled([
      client.command("INCR", "s"),
      client.command("GET", "s"),
      client.command("NOSUCHCOMMAND", "x"),
      client.command("LPUSH", "s", "x"),
      client.command("PING"),
    ]);
    const reason = (result: PromiseSettledResult<RedisReply>) => {
      assert.equal(result.status, "rejected");
      const err = (result as PromiseRejectedResult).reason;
      assert.ok(err instanceof RedisError, `not a RedisError: ${err}`);
      return err;
    };
    assert.equal(reason(incr).code, "ERR");
    assert.match(reason(incr).message, /not an integer/);
    assert.deepEqual(get, { status: "fulfilled", value: utf8.encode("text") });
    assert.match(reason(unknown).message, /^ERR unknown command/);
    assert.equal(reason(push).code, "WRONGTYPE");
    assert.deepEqual(ping, { status: "fulfilled", value: "PONG" });

    // Errors inside an array are values, not rejections.
    assert.equal(await client.command("MULTI"), "OK");
    assert.equal(await client.command("INCR", "s"), "QUEUED");
    assert.equal(await client.command("SET", "t", 1), "QUEUED");
    const exec = await client.command("EXEC");
    assert.ok(Array.isArray(exec));
    assert.ok(exec[0] instanceof RedisError);
    assert.equal(exec[1], "OK");
    assert.equal(client.state, "ready");
  },
});

Deno.test({
  name: "pub/sub delivers on three channels and a pattern, binary payloads included",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using client = await RedisClient.connect(redis.url);
    await using sub = await RedisSubscriber.connect(redis.url);
    const errors: Error[] = [];
    sub.onError((err) => errors.push(err));
    const seen: string[] = [];
    const payloads: Uint8Array[] = [];
    const onChannel = (payload: Uint8Array, channel: string, pattern?: string) => {
      payloads.push(payload);
      seen.push(`${channel}=${text(payload)}${pattern === undefined ? "" : ` via ${pattern}`}`);
    };
    await Promise.all(["one", "two", "three"].map((name) => sub.subscribe(name, onChannel)));
    await sub.psubscribe("room.*", (payload, channel, pattern) => {
      seen.push(`${pattern}: ${channel}=${text(payload)}`);
    });
    assert.deepEqual(sub.channels, ["one", "two", "three"]);
    assert.deepEqual(sub.patterns, ["room.*"]);

    const binary = new Uint8Array(256).map((_, i) => 255 - i);
    assert.equal(await client.publish("one", "1"), 1);
    assert.equal(await client.publish("two", binary), 1);
    assert.equal(await client.publish("three", "3"), 1);
    assert.equal(await client.publish("room.7", "hi"), 1);
    assert.equal(await client.publish("nobody", "x"), 0);
    await until(() => seen.length === 4, "four messages");
    assert.deepEqual(seen, ["one=1", `two=${text(binary)}`, "three=3", "room.*: room.7=hi"]);
    assert.deepEqual(payloads[1], binary);

    // A second handler on a channel, and one that throws: the others still get the message.
    const second: string[] = [];
    const secondHandler = (payload: Uint8Array) => second.push(text(payload));
    await sub.subscribe("one", secondHandler);
    sub.subscribe("one", () => {
      throw new Error("handler broke");
    });
    assert.equal(await client.publish("one", "both"), 1);
    await until(() => second.length === 1 && errors.length === 1, "the second handler");
    assert.equal(seen.at(-1), "one=both");
    assert.equal(errors[0]!.message, "handler broke");

    await sub.unsubscribe("one", secondHandler);
    assert.equal(await client.publish("one", "first only"), 1);
    await until(() => seen.at(-1) === "one=first only", "the first handler");
    assert.deepEqual(second, ["both"]);

    await sub.unsubscribe("one");
    await sub.punsubscribe("room.*");
    assert.equal(await client.publish("one", "gone"), 0);
    assert.equal(await client.publish("room.1", "gone"), 0);
    assert.equal(await client.publish("three", "still"), 1);
    await until(() => seen.at(-1) === "three=still", "the remaining channel");
    assert.deepEqual(sub.channels, ["two", "three"]);
    assert.deepEqual(sub.patterns, []);
    assert.throws(() => sub.subscribe(1 as unknown as string, () => {}), TypeError);
    assert.throws(() => sub.subscribe("x", "nope" as unknown as () => void), TypeError);
  },
});

Deno.test({
  name: "client and subscriber come back by themselves after a Redis restart",
  ignore,
  async fn() {
    await using redis = await startRedis();
    await using client = await RedisClient.connect(redis.url, fast);
    await using sub = await RedisSubscriber.connect(redis.url, fast);
    const clientStates: RedisState[] = [];
    const subStates: RedisState[] = [];
    client.onState(({ state }) => clientStates.push(state));
    sub.onState(({ state }) => subStates.push(state));
    const seen: string[] = [];
    await sub.subscribe("alpha", (payload, channel) => seen.push(`${channel}=${text(payload)}`));
    await sub.subscribe("beta", (payload, channel) => seen.push(`${channel}=${text(payload)}`));
    await sub.psubscribe("news.*", (payload, channel) => seen.push(`${channel}=${text(payload)}`));
    await client.command("SET", "before", "1");

    // A command in flight when the server goes away is rejected.
    const blocked = assert.rejects(
      client.command("BLPOP", "nothing", 0),
      isConnectionError(/^Redis closed the connection$/),
    );
    await redis.stop();
    await blocked;
    await Promise.all([waitForState(client, "reconnecting"), waitForState(sub, "reconnecting")]);

    // During the outage commands fail at once instead of queueing.
    const started = performance.now();
    await assert.rejects(
      client.command("GET", "before"),
      isConnectionError(new RegExp(`^Redis is not connected: reconnecting to 127\\.0\\.0\\.1:`)),
    );
    assert.ok(performance.now() - started < 50, "commands must fail fast while reconnecting");
    await delay(150); // a few failed attempts, backing off

    await redis.start();
    await Promise.all([waitForState(client, "ready"), waitForState(sub, "ready")]);
    assert.equal(await client.command("PING"), "PONG");
    // A fresh server without persistence: the old data is gone, the connection works.
    assert.equal(await client.command("GET", "before"), null);
    assert.equal(await client.publish("alpha", "back"), 1);
    assert.equal(await client.publish("beta", "back"), 1);
    assert.equal(await client.publish("news.today", "back"), 1);
    await until(() => seen.length === 3, "messages after the restart");
    assert.deepEqual(seen, ["alpha=back", "beta=back", "news.today=back"]);
    assert.deepEqual(clientStates, ["reconnecting", "ready"]);
    assert.deepEqual(subStates, ["reconnecting", "ready"]);

    // restart() as one step works the same.
    await redis.restart();
    await Promise.all([waitForState(client, "ready"), waitForState(sub, "ready")]);
    await until(() => client.state === "ready" && sub.state === "ready", "ready again");
    assert.equal(await client.publish("alpha", "again"), 1);
    await until(() => seen.at(-1) === "alpha=again", "a message after restart()");
  },
});

Deno.test({
  name: "with retryFirstConnect, a client started before Redis connects once it is up",
  ignore,
  async fn() {
    const port = freePort();
    const url = `redis://127.0.0.1:${port}`;
    const options = { ...fast, retryFirstConnect: true };
    await using client = new RedisClient(url, options);
    await using sub = new RedisSubscriber(url, options);
    const errors: Error[] = [];
    client.onError((err) => errors.push(err));
    assert.equal(client.state, "connecting");
    await assert.rejects(
      client.command("PING"),
      isConnectionError(/^Redis is not connected yet: connecting to 127\.0\.0\.1:/),
    );
    const seen: string[] = [];
    const subscribed = sub.subscribe("early", (payload) => seen.push(text(payload)));
    await delay(100);
    assert.ok(errors.length > 0 && errors[0] instanceof RedisConnectionError);

    await using _redis = await startRedis({ port });
    await client.ready;
    await subscribed;
    assert.equal(sub.state, "ready");
    assert.equal(await client.command("PING"), "PONG");
    assert.equal(await client.publish("early", "bird"), 1);
    await until(() => seen.length === 1, "the early subscription");
    assert.deepEqual(seen, ["bird"]);
  },
});

Deno.test({
  name: "close() rejects pending commands and is final",
  ignore,
  async fn() {
    await using redis = await startRedis();
    const client = await RedisClient.connect(redis.url);
    const states: RedisState[] = [];
    client.onState(({ state }) => states.push(state));
    const pending = Promise.all(
      [
        client.command("BLPOP", "nothing", 0),
        client.command("PING"),
        client.command("GET", "x"),
      ].map((command) => assert.rejects(command, isConnectionError(/^Redis client closed$/))),
    );
    const closing = client.close();
    assert.equal(client.state, "closed");
    await pending;
    await closing;
    await client.close();
    assert.deepEqual(states, ["closed"]);
    await assert.rejects(client.command("PING"), isConnectionError(/^Redis client is closed$/));

    const sub = await RedisSubscriber.connect(redis.url);
    await sub.subscribe("c", () => {});
    await sub.close();
    await assert.rejects(sub.subscribe("d", () => {}), isConnectionError(/closed/));
  },
});

Deno.test({
  name: "aborting the signal closes the client",
  ignore,
  async fn() {
    await using redis = await startRedis();
    const controller = new AbortController();
    const client = await RedisClient.connect(redis.url, { signal: controller.signal });
    const blocked = assert.rejects(
      client.command("BLPOP", "nothing", 0),
      isConnectionError(/^Redis client closed: the signal was aborted$/),
    );
    controller.abort();
    await blocked;
    assert.equal(client.state, "closed");
    await client.close();

    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(
      RedisClient.connect(redis.url, { signal: aborted.signal }),
      isConnectionError(/aborted/),
    );
  },
});

// --- TLS, against a fake server ---------------------------------------------------

Deno.test({
  name: "rediss:// logs in and selects over TLS, and refuses an untrusted certificate",
  ignore: !(await opensslAvailable()),
  async fn() {
    const { cert, key } = await makeCertificate();
    const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
    const login = "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n";
    const get = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    const received: string[] = [];
    const serving = (async () => {
      for await (const conn of listener) {
        let input = "";
        const buffer = new Uint8Array(1024);
        try {
          for (let n; (n = await conn.read(buffer)) !== null;) {
            input += text(buffer.subarray(0, n));
            if (input === login) {
              received.push(input);
              input = "";
              await conn.write(utf8.encode("+OK\r\n+OK\r\n"));
            } else if (input === get) {
              received.push(input);
              input = "";
              await conn.write(utf8.encode("$2\r\nhi\r\n"));
            }
          }
        } catch {
          // The untrusting client hangs up in the handshake.
        } finally {
          conn.close();
        }
      }
    })();
    try {
      const url = `rediss://:pw@localhost:${listener.addr.port}/2`;
      const client = await RedisClient.connect(url, { caCerts: [cert] });
      assert.equal(replyText(await client.command("GET", "k")), "hi");
      await client.close();
      assert.deepEqual(received, [login, get]);

      await assert.rejects(
        RedisClient.connect(url),
        isConnectionError(/^Cannot connect to Redis at localhost:\d+: invalid peer certificate/),
      );
    } finally {
      listener.close();
      await serving;
    }
  },
});
