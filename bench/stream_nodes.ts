// Comet nodes as child processes for the stream scripts (bench/recovery_soak.ts,
// bench/stream_order.ts): the real CLI, one worker each, limits off for loopback
// load, on an optional Redis.
import { ROOT } from "./child.ts";
import { terminate } from "./terminate.ts";

/** A Comet node: its ports, its command line, and its process while it runs. */
export interface StreamNode {
  readonly tcp: number;
  readonly api: number;
  readonly args: readonly string[];
  proc: Deno.ChildProcess | undefined;
}

/** A free loopback TCP port: bound, read and released. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr;
  l.close();
  return port;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** `count` nodes' command lines: TCP and API on free ports, one worker unless `extra` says, `extra` flags after. */
export function planNodes(count: number, extra: readonly string[], redisUrl = ""): StreamNode[] {
  const nodes: StreamNode[] = [];
  for (let i = 0; i < count; i++) {
    const tcp = freePort();
    const api = freePort();
    const args = [
      "run",
      "--unstable-net",
      "-A",
      "src/cli.ts",
      ...["--tcp", `127.0.0.1:${tcp}`, "--ws", "off", "--api", `127.0.0.1:${api}`],
      ...["--log", "warn", "--connect-rate", "0"],
      ...["--max-connections-per-ip", "0", "--max-auth-attempts", "0"],
      ...(extra.includes("--workers") ? [] : ["--workers", "1"]),
      ...extra,
      ...(redisUrl ? ["--redis", redisUrl, "--node-id", `n${i}`] : []),
    ];
    nodes.push({ tcp, api, args, proc: undefined });
  }
  return nodes;
}

/** Starts `node` and resolves once its push API answers. */
export async function startNode(node: StreamNode): Promise<void> {
  node.proc = new Deno.Command(Deno.execPath(), {
    args: [...node.args],
    cwd: ROOT.pathname,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  for (let i = 0; i < 300; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${node.api}/goim/online/total`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  throw new Error(`Node on API port ${node.api} did not start`);
}

/** Stops every node that runs. */
export async function stopNodes(nodes: readonly StreamNode[]): Promise<void> {
  await Promise.all(nodes.map(async (n) => {
    if (n.proc) await terminate(n.proc, 5000).catch(() => {});
    n.proc = undefined;
  }));
}

/**
 * What the push API said of a push: taken for every target (`ok`), taken
 * for the entry node's connections only while the cluster is degraded (code
 * 0 and a message saying so: outside the streams' order), or refused.
 */
export type PushOutcome = "ok" | "degraded" | "refused";

/** Posts a push to `path` on `node`'s API. */
export async function push(node: StreamNode, path: string, body: string): Promise<PushOutcome> {
  try {
    const res = await fetch(`http://127.0.0.1:${node.api}${path}`, { method: "POST", body });
    const answer = await res.json() as { code: number; message: string };
    if (!res.ok || answer.code !== 0) return "refused";
    return answer.message === "" ? "ok" : "degraded";
  } catch {
    return "refused";
  }
}
