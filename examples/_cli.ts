// How the examples start and fail: a mistake a person makes first (a bad flag,
// no server to talk to, a port already taken) is one line on stderr, not a
// stack trace.
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Bad arguments: the example prints the message and exits 2. */
export class UsageError extends Error {
  /** Creates the error; `message` says what is wrong with the arguments. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * `Deno.args` read by node:util's `parseArgs` with `options`; a flag it does
 * not know, or one missing its value, is a {@linkcode UsageError}.
 */
export function readArgs<T extends ParseArgsConfig["options"]>(options: T) {
  try {
    return parseArgs({ args: Deno.args, options, strict: true, allowPositionals: false });
  } catch (err) {
    // node:util's messages go on to explain "--"; the first sentence is the point.
    throw new UsageError((err as Error).message.split(". ")[0]!);
  }
}

/** A port flag's value: an integer from 0 to 65535. */
export function portArg(flag: string, value: string | undefined): number {
  const port = Number(value);
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535) || value?.trim() === "") {
    throw new UsageError(`${flag} must be a port number from 0 to 65535: ${value}`);
  }
  return port;
}

/**
 * Runs `main`; when it throws, prints `name: message` on stderr, one line,
 * and exits 2 for a {@linkcode UsageError}, 1 for anything else.
 */
export async function runExample(name: string, main: () => Promise<void> | void): Promise<void> {
  try {
    await main();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    console.error(`${name}: ${message.split("\n")[0]}`);
    Deno.exit(err instanceof UsageError ? 2 : 1);
  }
}
