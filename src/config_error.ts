/**
 * Thrown for a bad flag, variable, value or config file. The CLI prints its
 * message on one line and exits with status 2; the edge entry logs it once
 * and fails every request.
 *
 * @example
 * ```ts
 * import { ConfigError, parseDuration } from "./config.ts";
 * try {
 *   parseDuration("5 parsecs");
 * } catch (err) {
 *   console.log(err instanceof RangeError); // true
 * }
 * console.log(new ConfigError("x").name); // "ConfigError"
 * ```
 */
export class ConfigError extends Error {
  /** Creates the error; the message names the flag or variable. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
