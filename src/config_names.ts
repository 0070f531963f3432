/**
 * How a setting is named: as a flag (`--jwt-secret`), as an environment
 * variable (`COMET_JWT_SECRET`), and in an error message about it, which
 * names it the way the operator gave it.
 *
 * @module
 */

/**
 * The environment variable of a flag: `COMET_` and the flag's name in
 * capitals, dashes as underscores. Every flag of the `comet` command has
 * one, so a flag added to the table has its variable at once.
 *
 * @example
 * ```ts
 * import { envName } from "./config.ts";
 * console.log(envName("max-connections-per-ip")); // "COMET_MAX_CONNECTIONS_PER_IP"
 * console.log(envName("--jwt-secret")); // "COMET_JWT_SECRET"
 * ```
 */
export function envName(flag: string): string {
  return `COMET_${flag.replace(/^--/, "").toUpperCase().replaceAll("-", "_")}`;
}

/**
 * @internal How messages name settings: each by the way it was given
 * (`--auth`, `COMET_AUTH`), and a setting nobody gave the way the caller
 * reads them (flags for the CLI, variables for the edge entry).
 */
export class SettingNames {
  readonly #given = new Map<string, string>();
  readonly #style: "flag" | "env";

  constructor(style: "flag" | "env") {
    this.#style = style;
  }

  /** Whether messages about settings nobody gave should name variables. */
  get env(): boolean {
    return this.#style === "env";
  }

  /** Records that `flag` was given as `label` (`--auth`, `COMET_AUTH`). */
  given(flag: string, label: string): void {
    this.#given.set(flag, label);
  }

  /** Whether `flag` was given by a source other than the environment. */
  givenAbove(flag: string): boolean {
    const label = this.#given.get(flag);
    return label !== undefined && label.startsWith("--");
  }

  /** The name of `flag` as given, else in the caller's style. */
  of(flag: string): string {
    return this.#given.get(flag) ??
      (this.#style === "env" ? envName(flag) : `--${flag}`);
  }

  /** `flag` set to `value`, as it would be written: `--auth jwt` or `COMET_AUTH=jwt`. */
  is(flag: string, value: string): string {
    const name = this.of(flag);
    return name.startsWith("--") ? `${name} ${value}` : `${name}=${value}`;
  }
}

/**
 * @internal `Deno.env.get` that never prompts and never throws: a variable
 * the process may not read (no `--allow-env`, or a platform that refuses)
 * reads as unset, and `onDenied` hears of it.
 */
export function denoEnv(
  onDenied?: (name: string) => void,
): (name: string) => string | undefined {
  return (name) => {
    try {
      if (Deno.permissions.querySync({ name: "env", variable: name }).state === "granted") {
        return Deno.env.get(name);
      }
    } catch {
      // A platform without permissions or without an environment: unset.
    }
    onDenied?.(name);
    return undefined;
  };
}
