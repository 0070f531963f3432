/**
 * Comet's version, kept equal to deno.json's `"version"` (a test fails when
 * they differ): a constant, so that `--version`, `/metrics` and the cluster's
 * node reports need no file read and no permission.
 *
 * @module
 */

/**
 * This release of Comet.
 *
 * @example
 * ```ts
 * import { VERSION } from "./version.ts";
 * console.log(`comet ${VERSION}`); // comet 0.1.0
 * ```
 */
export const VERSION = "0.1.0";

/**
 * The one line `comet --version` prints: Comet's version, then the runtime's.
 *
 * @example
 * ```ts
 * import { versionLine } from "./version.ts";
 * console.log(versionLine()); // comet 0.1.0 (deno 2.9.6, v8 ..., typescript ..., x86_64-unknown-linux-gnu)
 * ```
 */
export function versionLine(): string {
  const { deno, v8, typescript } = Deno.version;
  return `comet ${VERSION} (deno ${deno}, v8 ${v8}, typescript ${typescript}, ${Deno.build.target})`;
}
