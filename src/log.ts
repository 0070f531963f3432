/** Log levels, least severe first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Extra key/value detail attached to a log line. */
export type LogFields = Record<string, unknown>;

/** Where Comet writes what it does. Replace it to route lines elsewhere. */
export interface Logger {
  /** Detail for a developer chasing a problem. */
  debug(message: string, fields?: LogFields): void;
  /** Normal operation worth a line: listening, shutting down. */
  info(message: string, fields?: LogFields): void;
  /** Something went wrong with one connection or request. */
  warn(message: string, fields?: LogFields): void;
  /** Something went wrong with the server itself. */
  error(message: string, fields?: LogFields): void;
}

const _RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  /** Lines below this level are dropped. Defaults to `"info"`. */
  level?: LogLevel;
  /** Receives each formatted line. Defaults to writing to stderr. */
  write?: (line: string) => void;
}

function _format(level: LogLevel, message: string, fields?: LogFields): string {
  let line = `${new Date().toISOString()} ${level.toUpperCase()} ${message}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      const text = v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v);
      line += ` ${k}=${/[\s"=]/.test(text ?? "") ? JSON.stringify(text) : text}`;
    }
  }
  return line;
}

const _encoder = new TextEncoder();

/**
 * A plain-text logger: `2026-11-21T10:00:00.000Z INFO message key=value`.
 *
 * @example
 * ```ts
 * import { createLogger } from "./log.ts";
 * const log = createLogger({ level: "warn" });
 * log.info("not shown");
 * log.warn("shown", { key: "abc" });
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = _RANK[options.level ?? "info"];
  if (min === undefined) throw new RangeError(`Unknown log level: ${options.level}`);
  const write = options.write ?? ((line: string) => {
    Deno.stderr.writeSync(_encoder.encode(line + "\n"));
  });
  const at = (level: LogLevel) => (message: string, fields?: LogFields) => {
    if (_RANK[level] >= min) write(_format(level, message, fields));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
