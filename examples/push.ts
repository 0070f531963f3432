// Pushes through Comet's HTTP API from the command line, and reads the online
// figures. Prints the API's JSON answer; on an error, prints one line and
// exits non-zero (2 for bad arguments, 1 for everything else).
//
//   deno run --allow-net examples/push.ts keys KEY... --body "hi"
//   deno run --allow-net examples/push.ts mids 1 2 --body "hi"
//   deno run --allow-net examples/push.ts room live 1000 --body "hi"
//   deno run --allow-net examples/push.ts all --speed 100 --body "hi"
//   deno run --allow-net examples/push.ts online top live | online room live 1000 | online total
//
// Options: --op N (default 1000), --api URL (default http://127.0.0.1:3111),
// --token TOKEN (or COMET_API_TOKEN, which needs --allow-env=COMET_API_TOKEN).
import { parseArgs } from "node:util";

const USAGE = "usage: push.ts keys KEY... | mids MID... | room TYPE ROOM | all [--speed N] " +
  "(with --body TEXT [--op N]) | online top TYPE [--limit N] | online room TYPE ROOM... | " +
  "online total; options --api URL, --token TOKEN";

/** Bad arguments: exit status 2. */
class UsageError extends Error {}

interface Call {
  method: "GET" | "POST";
  path: string;
  params: [string, string][];
  body?: string;
}

function integer(name: string, value: string, min: number): string {
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new UsageError(`${name} must be an integer of at least ${min}: ${value}`);
  }
  return value;
}

/** Turns the command line into the API call it stands for. */
function parse(args: string[]): { call: Call; api: string; token: string | undefined } {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        api: { type: "string", default: "http://127.0.0.1:3111" },
        token: { type: "string" },
        op: { type: "string", default: "1000" },
        body: { type: "string" },
        speed: { type: "string" },
        limit: { type: "string", default: "10" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    // node:util's messages go on to explain "--"; the first sentence is the point.
    throw new UsageError((err as Error).message.split(". ")[0]);
  }
  const { values, positionals: [command, ...rest] } = parsed;
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const push = (path: string, params: [string, string][]): Call => {
    if (values.body === undefined) throw new UsageError(`${command} needs --body TEXT`);
    params.unshift(["operation", integer("--op", values.op, 0)]);
    return { method: "POST", path: `/goim/push/${path}`, params, body: values.body };
  };
  const atLeastOne = (what: string) => {
    if (rest.length === 0) throw new UsageError(`${command} needs at least one ${what}`);
    return rest;
  };
  let call: Call;
  switch (command) {
    case "keys":
      call = push("keys", atLeastOne("KEY").map((key) => ["keys", key]));
      break;
    case "mids":
      call = push("mids", atLeastOne("MID").map((mid) => ["mids", integer("MID", mid, 0)]));
      break;
    case "room":
      if (rest.length !== 2) throw new UsageError("room needs TYPE and ROOM, e.g. room live 1000");
      call = push("room", [["type", rest[0]!], ["room", rest[1]!]]);
      break;
    case "all":
      call = push("all", values.speed ? [["speed", integer("--speed", values.speed, 0)]] : []);
      break;
    case "online":
      call = online(rest, values.limit);
      break;
    case undefined:
      throw new UsageError(USAGE);
    default:
      throw new UsageError(`unknown command: ${command}; ${USAGE}`);
  }
  return { call, api: values.api, token: values.token ?? envToken() };
}

function online([kind, type, ...rooms]: string[], limit: string): Call {
  const get = (path: string, params: [string, string][]): Call => ({
    method: "GET",
    path: `/goim/online/${path}`,
    params,
  });
  if (kind === "total") return get("total", []);
  if (kind === "top" && type !== undefined) {
    return get("top", [["type", type], ["limit", integer("--limit", limit, 1)]]);
  }
  if (kind === "room" && type !== undefined && rooms.length > 0) {
    return get("room", [["type", type], ...rooms.map((room): [string, string] => ["rooms", room])]);
  }
  throw new UsageError("online needs top TYPE, room TYPE ROOM... or total");
}

/** COMET_API_TOKEN, read only when allowed, so that --allow-net alone is enough. */
function envToken(): string | undefined {
  const env = { name: "env", variable: "COMET_API_TOKEN" } as const;
  if (Deno.permissions.querySync(env).state !== "granted") return undefined;
  return Deno.env.get(env.variable) || undefined;
}

async function run(args: string[]): Promise<void> {
  const { call, api, token } = parse(args);
  let url: URL;
  try {
    url = new URL(call.path, api);
  } catch {
    throw new UsageError(`--api is not a URL: ${api}`);
  }
  for (const [name, value] of call.params) url.searchParams.append(name, value);
  const headers = new Headers();
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  let response: Response;
  try {
    response = await fetch(url, { method: call.method, headers, body: call.body ?? null });
  } catch (err) {
    // Deno's "fetch failed" keeps the reason (e.g. "Connection refused") at the end of its cause.
    const cause = (err as Error).cause;
    const reason = cause instanceof Error ? cause.message.split(": ").at(-1) : String(err);
    throw new Error(`cannot reach ${url.origin}: ${reason}`);
  }
  const text = await response.text();
  let answer: { code?: number; message?: string };
  try {
    answer = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${response.status}: not a Comet API answer: ${text.slice(0, 80)}`);
  }
  if (!response.ok || answer.code !== 0) {
    const hint = response.status === 401 ? " (pass --token or set COMET_API_TOKEN)" : "";
    throw new Error(`HTTP ${response.status}: ${answer.message}${hint}`);
  }
  console.log(text);
}

try {
  await run(Deno.args);
} catch (err) {
  console.error(`push: ${(err as Error).message}`);
  Deno.exit(err instanceof UsageError ? 2 : 1);
}
