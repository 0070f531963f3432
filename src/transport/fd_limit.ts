/** The process's limit on open file descriptors (`ulimit -n`); `Infinity` when unlimited. */
export interface DescriptorLimit {
  /** The limit in force. */
  soft: number;
  /** How far the process may raise it. */
  hard: number;
}

/** Descriptors kept for everything but connections: the runtime, listeners, logs, the cluster link. */
export const DESCRIPTOR_RESERVE = 64;

/**
 * Reads the `Max open files` line of a `/proc/<pid>/limits` text.
 *
 * @example
 * ```ts
 * import { parseDescriptorLimit } from "./fd_limit.ts";
 *
 * const text = "Limit  Soft Limit  Hard Limit  Units\nMax open files  1024  524288  files\n";
 * console.log(parseDescriptorLimit(text)); // { soft: 1024, hard: 524288 }
 * ```
 */
export function parseDescriptorLimit(text: string): DescriptorLimit | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!m) return undefined;
  const value = (v: string) => v === "unlimited" ? Infinity : Number(v);
  return { soft: value(m[1]!), hard: value(m[2]!) };
}

/**
 * The process's descriptor limit, or undefined where it cannot be learnt.
 * Deno has no `getrlimit`, and Deno 2 lets a program read `/proc` only
 * with `--allow-all`; so it reads `/proc/self/limits` when it may (Linux,
 * every permission), else asks `sh -c "ulimit -n"` when it may run `sh`,
 * else gives up. It never prompts for a permission and never throws.
 *
 * @example
 * ```ts
 * import { readDescriptorLimit } from "./fd_limit.ts";
 *
 * const limit = readDescriptorLimit();
 * console.log(limit === undefined || limit.soft > 0); // true
 * ```
 */
export function readDescriptorLimit(): DescriptorLimit | undefined {
  if (Deno.build.os === "windows") return undefined;
  try {
    // Asked first: a read Deno would refuse may prompt for the permission on a terminal.
    const all = (["read", "write", "net", "env", "run", "ffi", "sys"] as const)
      .every((name) => Deno.permissions.querySync({ name }).state === "granted");
    if (all && Deno.build.os === "linux") {
      return parseDescriptorLimit(Deno.readTextFileSync("/proc/self/limits"));
    }
  } catch {
    // Unreadable after all: try the shell.
  }
  try {
    if (Deno.permissions.querySync({ name: "run", command: "sh" }).state !== "granted") {
      return undefined;
    }
    const out = new Deno.Command("sh", {
      args: ["-c", "ulimit -Sn; ulimit -Hn"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const [soft, hard] = new TextDecoder().decode(out.stdout).trim().split(/\s+/);
    return parseDescriptorLimit(`Max open files ${soft} ${hard ?? soft}`);
  } catch {
    return undefined;
  }
}

/** Connection limits, for {@linkcode fitConnections}. */
export interface ConnectionBudget {
  /** Client connections (TCP, WebSocket, TLS, pkg) at once. */
  connections: number;
  /** Push API connections at once; 0 without an API. */
  api: number;
}

/** Options for {@linkcode fitConnections}. */
export interface FitOptions {
  /** Descriptors kept for anything else. Default {@linkcode DESCRIPTOR_RESERVE}. */
  reserve?: number;
  /** Which limits may be lowered (those left at their defaults, say). Default both. */
  lower?: { connections?: boolean; api?: boolean };
}

/**
 * Lowers connection limits that would need more descriptors than `limit`
 * allows, so that the node refuses clients at its own limits (counted,
 * closed at once) before the process runs out of descriptors, with some
 * left for the push API and the rest. The API keeps a tenth of what is
 * left after the reserve (at least 8, at most what it asked for); the
 * clients get the rest. Limits that fit, or may not be lowered, come
 * back as they are.
 *
 * @example
 * ```ts
 * import { fitConnections } from "./fd_limit.ts";
 *
 * console.log(fitConnections(1024, { connections: 100_000, api: 1024 }));
 * // { connections: 864, api: 96 }
 * ```
 */
export function fitConnections(
  limit: number,
  wanted: ConnectionBudget,
  options: FitOptions = {},
): ConnectionBudget {
  const reserve = options.reserve ?? DESCRIPTOR_RESERVE;
  const available = Math.max(0, limit - reserve);
  if (wanted.connections + wanted.api <= available) return { ...wanted };
  const api = wanted.api > 0 && options.lower?.api !== false
    ? Math.min(wanted.api, Math.max(8, Math.floor(available / 10)))
    : wanted.api;
  const connections = options.lower?.connections !== false
    ? Math.min(wanted.connections, Math.max(1, available - api))
    : wanted.connections;
  return { connections, api };
}
