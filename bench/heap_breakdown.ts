// Where an idle connection's memory goes inside V8: runs the real Comet CLI
// with --inspect on a loopback port, takes a heap snapshot through the
// inspector before and after N idle authenticated connections (opened by
// bench/loadgen.ts), and prints the heap growth per connection by
// constructor / object type. Also prints RSS and Deno.memoryUsage-style
// totals so the non-V8 (native) share is visible.
//
// With kind `baseline` it does the same to bench/baseline_server.ts (TCP), so
// the two can be compared object by object.
//
//   deno run --allow-net --allow-read --allow-run bench/heap_breakdown.ts [tcp|ws|baseline] [N] [owners]
import { rssBytes, sleep } from "./_common.ts";

const KIND = (Deno.args[0] ?? "tcp") as "tcp" | "ws" | "baseline";
const N = Number(Deno.args[1] ?? 5_000);
/** With a third argument `owners`: anonymous arrays and closures by what holds them. */
const OWNERS = Deno.args[2] === "owners";
const ROOT = new URL("../", import.meta.url);
const path = (rel: string) => new URL(rel, ROOT).pathname;

function spawn(args: string[]) {
  const proc = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT.pathname,
  }).spawn();
  const out: string[] = [];
  let err = "";
  const wake: (() => void)[] = [];
  (async () => {
    let rest = "";
    for await (const c of proc.stdout.pipeThrough(new TextDecoderStream())) {
      rest += c;
      const p = rest.split("\n");
      rest = p.pop()!;
      out.push(...p);
      for (const w of wake.splice(0)) w();
    }
  })();
  (async () => {
    for await (const c of proc.stderr.pipeThrough(new TextDecoderStream())) {
      err += c;
      for (const w of wake.splice(0)) w();
    }
  })();
  const writer = proc.stdin.getWriter();
  let id = 0;
  const until = async <T>(f: () => T | undefined, ms = 60_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out; stderr:\n${err.slice(-2000)}`);
      await new Promise<void>((r) => {
        wake.push(r);
        setTimeout(r, 200);
      });
    }
  };
  return {
    proc,
    stderr: () => err,
    stdout: () => out.join("\n"),
    until,
    async call(cmd: Record<string, unknown>) {
      const my = ++id;
      await writer.write(new TextEncoder().encode(JSON.stringify({ ...cmd, id: my }) + "\n"));
      return await until(() => {
        const i = out.findIndex((l) => l.startsWith(`{"id":${my},`));
        return i < 0 ? undefined : JSON.parse(out.splice(i, 1)[0]!) as Record<string, unknown>;
      }, 120_000);
    },
  };
}

/** A message from the inspector: a reply (with `id`) or an event (with `method`). */
interface _InspectorMessage {
  id?: number;
  method?: string;
  params?: { chunk?: string };
}

/** The parts of a V8 heap snapshot this script reads. */
interface _HeapSnapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: unknown[];
      edge_fields: string[];
      edge_types: unknown[];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** A tiny Chrome DevTools Protocol client over the inspector WebSocket. */
class Inspector {
  #ws: WebSocket;
  #id = 0;
  #pending = new Map<number, (v: unknown) => void>();
  chunks: string[] = [];
  constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data as string) as _InspectorMessage;
      if (m.method === "HeapProfiler.addHeapSnapshotChunk") this.chunks.push(m.params!.chunk!);
      else if (m.id !== undefined) this.#pending.get(m.id)?.(m);
    };
  }
  static async connect(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    await new Promise((res, rej) => {
      ws.onopen = res;
      ws.onerror = rej;
    });
    return new Inspector(ws);
  }
  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = ++this.#id;
    this.#ws.send(JSON.stringify({ id, method, params }));
    return new Promise((r) => this.#pending.set(id, r));
  }
  async snapshot(): Promise<Map<string, { size: number; count: number }>> {
    await this.send("HeapProfiler.collectGarbage");
    this.chunks = [];
    await this.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    const snap = JSON.parse(this.chunks.join("")) as _HeapSnapshot;
    this.chunks = [];
    const f = snap.snapshot.meta.node_fields as string[];
    const types = snap.snapshot.meta.node_types[0] as string[];
    const [iType, iName, iSize] = ["type", "name", "self_size"].map((k) => f.indexOf(k));
    const nodes = snap.nodes as number[];
    const strings = snap.strings as string[];
    const agg = new Map<string, { size: number; count: number }>();
    // Who holds the anonymous arrays and closures: "holder.edge" of their first retainer.
    const holder = new Map<number, string>();
    const ownerOf = new Map<number, number>();
    {
      const ef = snap.snapshot.meta.edge_fields as string[];
      const edgeTypes = snap.snapshot.meta.edge_types[0] as string[];
      const [eType, eName, eTo] = ["type", "name_or_index", "to_node"].map((k) => ef.indexOf(k));
      const iEdges = f.indexOf("edge_count");
      const edges = snap.edges as number[];
      let e = 0;
      for (let i = 0; i < nodes.length; i += f.length) {
        const owner = `${types[nodes[i + iType!]!]}:${strings[nodes[i + iName!]!]!.slice(0, 30)}`;
        for (let k = 0; k < nodes[i + iEdges]!; k++, e += ef.length) {
          const to = edges[e + eTo!]!;
          if (holder.has(to)) continue;
          const et = edgeTypes[edges[e + eType!]!]!;
          if (et === "weak") continue;
          const name = et === "element" || et === "hidden"
            ? "[]"
            : String(strings[edges[e + eName!]!] ?? "");
          holder.set(to, `${owner}.${name.slice(0, 24)}`);
          ownerOf.set(to, i);
        }
      }
    }
    for (let i = 0; i < nodes.length; i += f.length) {
      const type = types[nodes[i + iType!]!]!;
      const name = strings[nodes[i + iName!]!]!;
      const anonymous = ((type === "array" || type === "closure") && (name === "" ||
        name.startsWith("(object"))) ||
        (type === "object" &&
          ["Object", "Uint8Array", "ArrayBuffer", "Generator", "Set", "Map"].includes(name));
      const key = OWNERS && anonymous
        ? `${type}: ${name.slice(0, 24)} <- ${holder.get(i) ?? "?"}` +
          (name.startsWith("(object") ? ` <- ${holder.get(ownerOf.get(i) ?? -1) ?? "?"}` : "")
        : type === "object" || type === "closure" || type === "native"
        ? `${type}: ${name.slice(0, 60)}`
        : type === "string" || type === "concatenated string" || type === "sliced string"
        ? "strings"
        : type === "array"
        ? `array: ${name.slice(0, 40)}`
        : `(${type})`;
      const e = agg.get(key) ?? { size: 0, count: 0 };
      e.size += nodes[i + iSize!]!;
      e.count++;
      agg.set(key, e);
    }
    return agg;
  }
  close() {
    this.#ws.close();
  }
}

// All load comes from 127.0.0.1: lift per-IP limits where this CLI has them.
const help = new TextDecoder().decode(
  (await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-read", "--allow-env", path("src/cli.ts"), "--help"],
    stdout: "piped",
    stderr: "null",
  }).output()).stdout,
);
const limitFlags = ["max-connections", "max-connections-per-ip", "connect-rate"]
  .filter((f) => help.includes(`--${f} `)).flatMap((f) => [`--${f}`, "0"]);
// One isolate, whatever the command's default: the heap read over the inspector is its only one.
if (help.includes("--workers ")) limitFlags.push("--workers", "1");

const comet = spawn(
  KIND === "baseline"
    ? ["run", "--allow-net", "--inspect=127.0.0.1:0", path("bench/baseline_server.ts")]
    : [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      "--inspect=127.0.0.1:0",
      path("src/cli.ts"),
      "--tcp",
      "127.0.0.1:0",
      "--ws",
      "127.0.0.1:0",
      "--api",
      "off",
      "--log",
      "info",
      "--heartbeat-timeout",
      "10m",
      "--queue",
      "1024",
      ...limitFlags,
    ],
);
const gen = spawn(["run", "--allow-net", path("bench/loadgen.ts")]);
try {
  const url = await comet.until(() =>
    /(ws:\/\/127\.0\.0\.1:\d+\/[\w\/-]+)/.exec(comet.stderr())?.[1]
  );
  const port = KIND === "baseline"
    ? Number(await comet.until(() => /"event":"listening","port":(\d+)/.exec(comet.stdout())?.[1]))
    : Number(
      (await comet.until(() =>
        /Comet listening.* tcp=[^ ]*:(\d+) ws=[^ ]*:(\d+)/.exec(comet.stderr()) ?? undefined
      ))[KIND === "tcp" ? 1 : 2],
    );
  const insp = await Inspector.connect(url);
  const open = (count: number, prefix: string) =>
    gen.call({
      cmd: "open",
      kind: KIND === "ws" ? "ws" : "tcp",
      port,
      count,
      keyPrefix: prefix,
      bufSize: 4096,
    });
  // Warm-up, then the "before" picture.
  await open(1_000, "w");
  await gen.call({ cmd: "close_all" });
  await sleep(1_000);
  const before = await insp.snapshot();
  const rss0 = rssBytes(comet.proc.pid);
  const r = await open(N, "h");
  await sleep(2_000);
  const after = await insp.snapshot();
  const rss1 = rssBytes(comet.proc.pid);
  const conns = r.opened as number;
  const rows = [...new Set([...before.keys(), ...after.keys()])].map((k) => {
    const a = before.get(k) ?? { size: 0, count: 0 };
    const b = after.get(k) ?? { size: 0, count: 0 };
    return { k, bytes: (b.size - a.size) / conns, objs: (b.count - a.count) / conns };
  }).sort((x, y) => y.bytes - x.bytes);
  const heap = rows.reduce((n, x) => n + x.bytes, 0);
  console.log(
    `${KIND}: ${conns} idle connections. RSS growth ${((rss1 - rss0) / conns).toFixed(0)} B/conn ` +
      `(includes the inspector's own bookkeeping); V8 heap (live objects, self sizes) ` +
      `${heap.toFixed(0)} B/conn.\n`,
  );
  console.log("  B/conn  objs/conn  object type / constructor");
  for (const x of rows.slice(0, OWNERS ? 60 : 30)) {
    if (Math.abs(x.bytes) < 4) continue;
    console.log(`  ${x.bytes.toFixed(0).padStart(6)}  ${x.objs.toFixed(2).padStart(9)}  ${x.k}`);
  }
  insp.close();
  await gen.call({ cmd: "close_all" });
} finally {
  try {
    gen.proc.kill("SIGKILL");
  } catch { /* gone */ }
  try {
    comet.proc.kill("SIGKILL");
  } catch { /* gone */ }
  await gen.proc.status;
  await comet.proc.status;
}
