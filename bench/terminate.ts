// Stopping a child process of the bench scripts politely first.

/**
 * Sends SIGTERM to `child`, SIGKILL after `graceMs` if it still runs, and
 * resolves with its exit status.
 *
 * @example
 * ```ts
 * import { terminate } from "./terminate.ts";
 * const child = new Deno.Command("sleep", { args: ["10"] }).spawn();
 * const status = await terminate(child, 1_000);
 * console.log(status.signal); // "SIGTERM"
 * ```
 */
export async function terminate(
  child: Deno.ChildProcess,
  graceMs: number,
): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGTERM");
  } catch {
    // Already exited.
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, graceMs);
  try {
    return await child.status;
  } finally {
    clearTimeout(timer);
  }
}
