// The runnable examples in examples/: each is run the way its README line runs
// it, as a child process, and judged by what it prints and what clients see.
import assert from "node:assert/strict";
import { AuthError, connect } from "../mod.ts";
import { startServer, TestClient, text, utf8 } from "./_helpers.ts";
import { Chromium, findChromium } from "./_chromium.ts";
import { LineReader, ROOT } from "./_process.ts";

const decoder = new TextDecoder();

/** The chat server as its README line runs it (--allow-run bundles the page's client). */
const CHAT = ["--allow-net", "--allow-read", "--allow-run", "examples/chat/server.ts"];

/** `deno run` of an example from the repository root. */
function example(args: string[], env?: Record<string, string>): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(env && { env }),
  });
}

/** A long-running example: its output as lines; `stop()` sends SIGINT and awaits the exit. */
function spawn(args: string[]) {
  const child = example(args).spawn();
  const stdout = new LineReader(child.stdout);
  const stderr = new LineReader(child.stderr);
  return {
    stdout,
    stderr,
    async stop(): Promise<Deno.CommandStatus> {
      try {
        child.kill("SIGINT");
      } catch {
        // Already exited.
      }
      const status = await child.status;
      await Promise.all([stdout.finished, stderr.finished]);
      return status;
    },
    async [Symbol.asyncDispose](): Promise<void> {
      await this.stop();
    },
  };
}

/** A full-duplex log line: `2026-01-02T15:04:05.000Z [server] message`. */
interface LogLine {
  at: number;
  side: string;
  message: string;
}

function parseLog(output: string): LogLine[] {
  return output.trim().split("\n").map((line) => {
    const m = /^(\S+Z) \[(server|client)\] (.*)$/.exec(line);
    assert.ok(m, `not a log line: ${line}`);
    return { at: Date.parse(m[1]!), side: m[2]!, message: m[3]! };
  });
}

/** Index of the first line matching, failing the test when there is none. */
function find(log: LogLine[], side: string, message: RegExp): number {
  const i = log.findIndex((line) => line.side === side && message.test(line.message));
  assert.ok(i >= 0, `no [${side}] ${message} in:\n${log.map((l) => l.message).join("\n")}`);
  return i;
}

Deno.test("fullduplex: main.ts plays gf's full-duplex script in order, 10x faster", async () => {
  const out = await example(["--allow-net", "examples/fullduplex/main.ts", "--speed", "10"])
    .output();
  const stderr = decoder.decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const log = parseLog(decoder.decode(out.stdout));
  const steps = [
    find(log, "server", /^listening on tcp:\/\/127\.0\.0\.1:\d+$/),
    find(log, "server", /^connect: client-1 from 127\.0\.0\.1:\d+$/),
    find(log, "client", /^connected to tcp:\/\/127\.0\.0\.1:\d+$/),
    find(log, "client", /^send: hello$/),
    find(log, "server", /^receive: hello from client-1: My name's John!$/),
    find(log, "client", /^receive: hello: Nice to meet you!$/),
    find(log, "server", /^push: doexit to client-1$/),
    find(log, "client", /^receive: doexit$/),
    find(log, "client", /^closed$/),
  ];
  assert.deepEqual(steps, [...steps].sort((a, b) => a - b), "steps out of order");
  const [connected, hello, doexit] = [steps[1]!, steps[3]!, steps[6]!];
  assert.ok(find(log, "server", /^disconnect: client-1$/) > steps[7]!);

  // Heartbeats every 100 ms, hello after 300 ms, doexit after 1 s.
  const beats = (side: string, message: string, from: number, to: number) =>
    log.slice(from, to).filter((l) => l.side === side && l.message === message).length;
  assert.ok(beats("server", "heartbeat from client-1", connected, hello) >= 2);
  assert.ok(beats("client", "receive: heartbeat reply", connected, doexit) >= 6);
  assert.ok(log[hello]!.at - log[connected]!.at >= 280, "hello came too early");
  assert.ok(log[doexit]!.at - log[connected]!.at >= 980, "doexit came too early");
});

Deno.test("fullduplex: server.ts and client.ts run as two processes", async () => {
  await using server = spawn([
    "--allow-net",
    "examples/fullduplex/server.ts",
    "--port",
    "0",
    "--speed",
    "10",
  ]);
  const [, url] = await server.stdout.line(/\[server\] listening on (\S+)$/);
  const out = await example(
    ["--allow-net", "examples/fullduplex/client.ts", "--url", url!, "--speed", "10"],
  ).output();
  assert.equal(out.code, 0, decoder.decode(out.stderr));
  const log = parseLog(decoder.decode(out.stdout));
  assert.ok(
    find(log, "client", /^receive: hello: Nice to meet you!$/) <
      find(log, "client", /^receive: doexit$/),
  );
  assert.equal(log.at(-1)?.message, "closed");
  await server.stdout.line(/\[server\] disconnect: client-1$/);
  const status = await server.stop();
  assert.equal(status.code, 0, server.stderr.log);
});

Deno.test("custom_operator: known tokens get in and are answered, unknown ones are refused", async () => {
  await using server = spawn(["--allow-net", "examples/custom_operator.ts", "--port", "0"]);
  const [, url] = await server.stdout.line(/^listening on (\S+)$/);

  await using alice = await connect(url!, { auth: { token: "alice-secret" } });
  await server.stdout.line(/^\[auth\] alice \(mid 1\) from 127\.0\.0\.1$/);
  assert.deepEqual(await alice.requestJson({ cmd: "whoami" }), {
    mid: 1,
    name: "alice",
    room: "live://lobby",
  });
  assert.deepEqual(await alice.requestJson({ cmd: "echo", text: "hi" }), { text: "hi" });
  assert.deepEqual(await alice.requestJson({ cmd: "fly" }), { error: "unknown command: fly" });
  await server.stdout.line(/^\[receive\] alice: echo$/);

  await assert.rejects(connect(url!, { auth: { token: "alice-secreT" } }), (err) => {
    assert.ok(err instanceof AuthError);
    assert.equal(err.reason, "auth failed: unknown token");
    return true;
  });
  await server.stdout.line(/^\[auth\] refused an unknown token from 127\.0\.0\.1$/);

  await alice.close();
  await server.stdout.line(/^\[disconnect\] alice$/);
  const status = await server.stop();
  assert.equal(status.code, 0, server.stderr.log);
});

Deno.test("push: every push kind and the online figures go through the API", async () => {
  await using server = startServer({ apiToken: "s3cret" });
  const api = `http://127.0.0.1:${server.addrs.api!.port}`;
  const port = server.addrs.tcp!.port;
  await using a = await TestClient.auth(port, {
    mid: 1,
    key: "a",
    room_id: "live://1000",
    accepts: [1000],
  });
  await using b = await TestClient.auth(port, {
    mid: 2,
    key: "b",
    room_id: "live://2000",
    accepts: [1000, 1001],
  });
  const push = async (args: string[], env?: Record<string, string>) => {
    const permissions = env ? ["--allow-net", "--allow-env=COMET_API_TOKEN"] : ["--allow-net"];
    const out = await example([...permissions, "examples/push.ts", "--api", api, ...args], env)
      .output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout).trim(),
      stderr: decoder.decode(out.stderr).trim(),
    };
  };
  const ok = async (...args: string[]) => {
    const out = await push([...args, "--token", "s3cret"]);
    assert.equal(out.code, 0, out.stderr);
    const answer = JSON.parse(out.stdout);
    assert.equal(answer.code, 0);
    return answer.data;
  };
  const next = async (client: TestClient) => {
    const frame = await client.next();
    return [frame.op, text(frame.body)];
  };

  await ok("keys", "a", "--body", "to a");
  assert.deepEqual(await next(a), [1000, "to a"]);
  await ok("mids", "2", "--op", "1001", "--body", "to mid 2");
  assert.deepEqual(await next(b), [1001, "to mid 2"]);
  await ok("room", "live", "1000", "--body", "to the room");
  assert.deepEqual(await next(a), [1000, "to the room"]);
  await ok("all", "--speed", "1000", "--body", "to all");
  assert.deepEqual(await next(a), [1000, "to all"]);
  assert.deepEqual(await next(b), [1000, "to all"]);
  assert.ok(await b.silent(100), "b got a push meant for others");

  assert.deepEqual(await ok("online", "total"), { ip_count: 1, conn_count: 2 });
  assert.deepEqual(await ok("online", "room", "live", "1000", "2000", "3000"), {
    1000: 1,
    2000: 1,
    3000: 0,
  });
  assert.equal((await ok("online", "top", "live", "--limit", "1")).length, 1);

  const fromEnv = await push(["keys", "b", "--body", "env token"], { COMET_API_TOKEN: "s3cret" });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.deepEqual(await next(b), [1000, "env token"]);

  const unauthorized = await push(["keys", "a", "--body", "no token"]);
  assert.equal(unauthorized.code, 1);
  assert.match(unauthorized.stderr, /^push: HTTP 401: Unauthorized[^\n]*$/);
  for (
    const args of [
      ["keys", "--body", "x"],
      ["mids", "one", "--body", "x"],
      ["room", "live", "--body", "x"],
      ["keys", "a"],
      ["online", "top"],
      ["shout"],
      ["keys", "a", "--body", "x", "--bogus"],
    ]
  ) {
    const bad = await push(args);
    assert.equal(bad.code, 2, `${args.join(" ")}: ${bad.stderr}`);
    assert.match(bad.stderr, /^push: [^\n]+$/);
  }
  assert.ok(await a.silent(100), "a got an unexpected push");
});

Deno.test({
  name: "chat: two browser pages join a room, see each other's messages and count 2 online",
  ignore: findChromium() === undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "comet_chat_" });
    await using server = spawn([
      ...CHAT,
      "--http-port",
      "0",
      "--ws-port",
      "0",
      "--api-port",
      "0",
    ]);
    try {
      const [, url] = await server.stdout.line(/^Chat on (\S+) /);
      await using browser = await Chromium.launch();
      const pages = [await browser.newPage(url!), await browser.newPage(url!)];
      for (const page of pages) {
        await page.waitFor(`document.querySelector("#status").textContent === "connected"`);
        await page.evaluate(`{
          const room = document.querySelector("#room");
          room.value = "chat://deno";
          room.dispatchEvent(new Event("change"));
        }`);
      }
      for (const page of pages) {
        await page.waitFor(`document.querySelector("#online").textContent === "2"`);
      }

      await pages[0]!.evaluate(`{
        document.querySelector("#name").value = "alice";
        document.querySelector("#text").value = "hello from alice";
        document.querySelector("#say").requestSubmit();
      }`);
      for (const page of pages) {
        await page.waitFor(`document.querySelectorAll("#messages li").length > 0`);
        const shown = await page.evaluate(`[...document.querySelectorAll("#messages li")]
          .map((li) => [li.firstChild.textContent, li.lastChild.textContent])`);
        assert.deepEqual(shown, [["alice", "hello from alice"]]);
        assert.deepEqual(page.errors, []);
      }

      const png = await pages[1]!.screenshot(`${dir}/chat.png`);
      assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      assert.deepEqual((await Deno.readFile(`${dir}/chat.png`)).subarray(0, 8), png.subarray(0, 8));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    assert.equal((await server.stop()).code, 0, server.stderr.log);
  },
});

Deno.test("chat: the server answers say with a room broadcast and serves its files", async () => {
  await using server = spawn([
    ...CHAT,
    "--http-port",
    "0",
    "--ws-port",
    "0",
    "--api-port",
    "0",
  ]);
  const [, page, ws] = await server.stdout.line(/^Chat on (\S+) \(WebSocket (\S+),/);
  for (const [path, type] of [["", "text/html"], ["client.js", "text/javascript"]]) {
    const res = await fetch(new URL(path!, page));
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, new RegExp(type!));
    await res.body?.cancel();
  }
  const config = await (await fetch(new URL("config.json", page))).json();
  assert.equal(config.wsPort, Number(new URL(ws!).port));

  await using bob = await connect(ws!, { roomId: "chat://lobby" });
  const said = new Promise<unknown>((resolve) => {
    bob.onJson<{ act: string }>(1000, (value) => value.act === "say" && resolve(value));
  });
  assert.deepEqual(
    await bob.requestJson({ act: "say", data: { name: " bob ", text: "hi all" } }),
    { ok: true },
  );
  assert.deepEqual(await said, { act: "say", data: { name: "bob", text: "hi all" } });
  assert.deepEqual(await bob.requestJson({ act: "say", data: { text: " " } }), {
    ok: false,
    error: "Say something",
  });
  assert.deepEqual(_json(await bob.request("not json", { timeout: 5_000 })), {
    ok: false,
    error: "Message is not JSON",
  });
  assert.deepEqual(await bob.requestJson(null, { timeout: 5_000 }), {
    ok: false,
    error: "Unknown act: undefined",
  });
  await bob.changeRoom("");
  assert.deepEqual(await bob.requestJson({ act: "say", data: { text: "anyone?" } }), {
    ok: false,
    error: "Join a room first",
  });
  await bob.close();
  assert.equal((await server.stop()).code, 0, server.stderr.log);
});

Deno.test({
  name: "chat: a page reconnects with the client's backoff when the server comes back",
  ignore: findChromium() === undefined,
  async fn() {
    const ports = ["--http-port", "0", "--api-port", "0"];
    const first = spawn([...CHAT, ...ports, "--ws-port", "0"]);
    let second: ReturnType<typeof spawn> | undefined;
    try {
      const [, url, ws] = await first.stdout.line(/^Chat on (\S+) \(WebSocket (\S+),/);
      await using browser = await Chromium.launch();
      const page = await browser.newPage(url!);
      await page.waitFor(`document.querySelector("#status").textContent === "connected"`);
      assert.equal((await first.stop()).code, 0, first.stderr.log);
      await page.waitFor(
        `document.querySelector("#status").textContent.startsWith("reconnecting")`,
      );
      // The same WebSocket port: the page has it from config.json and keeps it.
      second = spawn([...CHAT, ...ports, "--ws-port", new URL(ws!).port]);
      await second.stdout.line(/^Chat on /);
      await page.waitFor(`document.querySelector("#status").textContent === "connected"`, 20_000);
      // Saying something works only in a room: the client joined its room again.
      await page.evaluate(`{
        document.querySelector("#text").value = "back again";
        document.querySelector("#say").requestSubmit();
      }`);
      await page.waitFor(`document.querySelectorAll("#messages li").length > 0`);
      assert.deepEqual(page.errors, []);
    } finally {
      await first.stop();
      if (second) assert.equal((await second.stop()).code, 0, second.stderr.log);
    }
  },
});

/** Runs an example to its end: exit status and stderr, trimmed. */
async function fails(args: string[]): Promise<{ code: number; stderr: string }> {
  const out = await example(args).output();
  return { code: out.code, stderr: decoder.decode(out.stderr).trim() };
}

Deno.test("listen: joins the room and prints each push, as the README's first screen runs it", async () => {
  await using server = startServer();
  await using listen = spawn([
    "--allow-net",
    "examples/listen.ts",
    "--url",
    `ws://127.0.0.1:${server.addrs.ws!.port}/sub`,
    "--room",
    "live://7",
  ]);
  assert.equal(
    (await listen.stdout.line(/^listening/)).input,
    "listening in live://7 for op 1000 as mid 1",
  );
  server.comet.pushRoom("live://7", 1001, utf8.encode("not watched"));
  server.comet.pushRoom("live://7", 1000, utf8.encode("hello"));
  assert.equal((await listen.stdout.line(/^push/)).input, "push op 1000: hello");
  assert.equal((await listen.stop()).code, 0, listen.stderr.log);
  assert.ok(!listen.stdout.log.includes("not watched"), listen.stdout.log);
});

Deno.test("examples: no server, a bad flag or a taken port is one line on stderr, not a stack", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refused = closed.addr.port;
  closed.close();
  using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const taken = held.addr.port;
  const cases: [args: string[], code: number, line: RegExp][] = [
    [
      ["--allow-net", "examples/fullduplex/client.ts", "--url", `tcp://127.0.0.1:${refused}`],
      1,
      new RegExp(
        `^client: Connecting to tcp://127\\.0\\.0\\.1:${refused} failed: Connection refused.*; is the server running\\?`,
      ),
    ],
    [
      ["--allow-net", "examples/fullduplex/client.ts", "--bogus"],
      2,
      /^client: Unknown option '--bogus'$/,
    ],
    [
      ["--allow-net", "examples/fullduplex/main.ts", "--speed", "0"],
      2,
      /^fullduplex: --speed must be a positive number: 0$/,
    ],
    [
      ["--allow-net", "examples/fullduplex/server.ts", "--port", String(taken)],
      1,
      new RegExp(`^server: Address is already in use: 127\\.0\\.0\\.1:${taken} \\(tcp\\)$`),
    ],
    [
      ["--allow-net", "examples/listen.ts", "--url", `ws://127.0.0.1:${refused}/sub`],
      1,
      /^listen\.ts: Connecting to ws:\/\/127\.0\.0\.1:\d+\/sub failed: .*; is the server running\? \(deno task start\)$/,
    ],
    [
      ["--allow-net", "examples/listen.ts", "--op", "7"],
      2,
      /^listen\.ts: --op must be an integer of at least 1000: 7$/,
    ],
    [
      ["--allow-net", "examples/custom_operator.ts", "--port", "x"],
      2,
      /^custom_operator: --port must be a port number from 0 to 65535: x$/,
    ],
    [
      [...CHAT, "--ws-port", "70000"],
      2,
      /^chat: --ws-port must be a port number from 0 to 65535: 70000$/,
    ],
    [
      ["--allow-net", "--allow-read", "examples/chat/server.ts"],
      1,
      /^chat: cannot bundle the page's client: run with --allow-run \(for deno bundle\)$/,
    ],
    [
      [
        "--allow-net",
        "examples/push.ts",
        "--api",
        `http://127.0.0.1:${refused}`,
        "online",
        "total",
      ],
      1,
      /^push: cannot reach http:\/\/127\.0\.0\.1:\d+: /,
    ],
  ];
  for (const [args, code, line] of cases) {
    const out = await fails(args);
    assert.equal(out.stderr.split("\n").length, 1, `${args.join(" ")}:\n${out.stderr}`);
    assert.match(out.stderr, line, args.join(" "));
    assert.equal(out.code, code, `${args.join(" ")}: ${out.stderr}`);
  }
});

function _json(bytes: Uint8Array): unknown {
  return JSON.parse(new TextDecoder().decode(bytes));
}
