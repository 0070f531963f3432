/**
 * Log levels, least severe first.
 *
 * @example
 * ```ts
 * import { createLogger, type LogLevel } from "./log.ts";
 *
 * const level: LogLevel = "warn";
 * const logger = createLogger({ level });
 * ```
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

/**
 * Extra key/value detail attached to a log line.
 *
 * @example
 * ```ts
 * import { createLogger, type LogFields } from "./log.ts";
 *
 * const fields: LogFields = { room: "live://1000", bytes: 4096 };
 * createLogger().warn("Push refused: backlog full", fields);
 * ```
 */
export type LogFields = Record<string, unknown>;

/**
 * Where Comet writes what it does. Replace it to route lines elsewhere.
 *
 * @example
 * ```ts
 * import type { Logger } from "./log.ts";
 *
 * const consoleLogger: Logger = {
 *   debug: (message, fields) => console.debug(message, fields ?? {}),
 *   info: (message, fields) => console.info(message, fields ?? {}),
 *   warn: (message, fields) => console.warn(message, fields ?? {}),
 *   error: (message, fields) => console.error(message, fields ?? {}),
 * };
 * ```
 */
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

/**
 * How log lines look: `text` is `<time> <LEVEL> <message> key=value ...`;
 * `json` is one JSON object per line with `time`, `level`, `msg` and the
 * fields.
 *
 * @example
 * ```ts
 * import { createLogger, type LogFormat } from "./log.ts";
 *
 * const format: LogFormat = "json";
 * const logger = createLogger({ format });
 * ```
 */
export type LogFormat = "text" | "json";

/**
 * Options for {@linkcode createLogger}.
 *
 * @example
 * ```ts
 * import type { LoggerOptions } from "./log.ts";
 *
 * const options: LoggerOptions = {
 *   level: "debug",
 *   format: "json",
 *   write: (line) => console.log(line),
 * };
 * ```
 */
export interface LoggerOptions {
  /** Lines below this level are dropped. Defaults to `"info"`. */
  level?: LogLevel;
  /** Line format. Defaults to `"text"`. */
  format?: LogFormat;
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

/** Keys every JSON line starts with; a field of the same name is written with a `_` suffix. */
const _RESERVED = new Set(["time", "level", "msg"]);

/** Errors become their message; bigints, which JSON cannot hold, their decimal text. */
function _jsonValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === "bigint") return value.toString();
  return value;
}

function _formatJson(level: LogLevel, message: string, fields?: LogFields): string {
  const line: Record<string, unknown> = { time: new Date().toISOString(), level, msg: message };
  if (fields) {
    for (const [k, v] of Object.entries(fields)) line[_RESERVED.has(k) ? `${k}_` : k] = v;
  }
  try {
    return JSON.stringify(line, _jsonValue);
  } catch {
    // A cycle, say: a line with the fields as text beats losing the line.
    for (const [k, v] of Object.entries(line)) {
      if (typeof v === "object" && v !== null) line[k] = String(v);
    }
    return JSON.stringify(line, _jsonValue);
  }
}

const _encoder = new TextEncoder();

/**
 * A logger writing plain text (`2026-11-21T10:00:00.000Z INFO message
 * key=value`) or, with `format: "json"`, one JSON object per line
 * (`{"time":"2026-11-21T10:00:00.000Z","level":"info","msg":"message","key":"value"}`).
 * Errors among the fields are written as their message.
 *
 * @throws {RangeError} When the level or format is unknown.
 *
 * @example
 * ```ts
 * import { createLogger } from "./log.ts";
 * const log = createLogger({ level: "warn" });
 * log.info("not shown");
 * log.warn("shown", { key: "abc" });
 *
 * const json = createLogger({ format: "json", write: (line) => console.log(JSON.parse(line).msg) });
 * json.info("Comet listening", { tcp: "127.0.0.1:3101" }); // Comet listening
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = _RANK[options.level ?? "info"];
  if (min === undefined) throw new RangeError(`Unknown log level: ${options.level}`);
  const format = options.format ?? "text";
  if (format !== "text" && format !== "json") {
    throw new RangeError(`Log format must be text or json: ${format}`);
  }
  const render = format === "json" ? _formatJson : _format;
  const write = options.write ?? ((line: string) => {
    Deno.stderr.writeSync(_encoder.encode(line + "\n"));
  });
  const at = (level: LogLevel) => (message: string, fields?: LogFields) => {
    if (_RANK[level] >= min) write(render(level, message, fields));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/**
 * A logger that drops everything.
 *
 * @example
 * ```ts
 * import { silentLogger } from "./log.ts";
 * import { Comet } from "./server/comet.ts";
 *
 * await using comet = new Comet({ logger: silentLogger });
 * ```
 */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
