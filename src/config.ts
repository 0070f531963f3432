/**
 * The settings of the `comet` command: flags, a `--config` file and the
 * environment, read through one table (`config_flags.ts`) onto the
 * defaults of `defaults.ts`, then checked (`config_checks.ts`). The edge
 * entry reads the environment through the same.
 *
 * @module
 */
import type { AuthMode, CliConfig } from "./cli_config.ts";
import { AUTH_FLAGS, checkCombinations } from "./config_checks.ts";
import { ConfigError } from "./config_error.ts";
import { type Flag, FLAGS } from "./config_flags.ts";
import { envName, SettingNames } from "./config_names.ts";
import { DEFAULTS } from "./defaults.ts";

export type { AuthMode, CliConfig } from "./cli_config.ts";
export { checkExposure } from "./config_checks.ts";
export { ConfigError } from "./config_error.ts";
export { envName } from "./config_names.ts";
export { parseAddr, parseDuration } from "./config_values.ts";

/** The `--help` text. */
export function usage(): string {
  const lines = [
    "Usage: comet [flags]",
    "",
    "Comet: a goim-compatible push server. Flags may also come from a JSON file",
    "given with --config FILE (keys are the flag names without dashes), and from",
    "the environment: COMET_ and the name in capitals, dashes as underscores",
    "(--max-body is COMET_MAX_BODY; a switch reads 1 or 0). Flags win over the",
    "file, which wins over the environment.",
    "",
  ];
  const rows = [
    ...FLAGS.map((f) => [f.arg === "" ? `--${f.name}` : `--${f.name} ${f.arg}`, f.help]),
    ["--config FILE", "read flags from a JSON file; command-line flags win"],
    ["--help", "print this help"],
    ["--version", "print Comet's and Deno's versions"],
  ];
  const width = Math.max(...rows.map((r) => r[0]!.length)) + 2;
  for (const [flag, help] of rows) lines.push(`  ${flag!.padEnd(width)}${help}`);
  lines.push("", "Durations read 250ms, 5s, 8m or 1h.");
  return lines.join("\n");
}

/** A setting of the `comet` command, as {@linkcode listSettings} lists it. */
export interface SettingInfo {
  /** The flag, e.g. `--jwt-secret`. */
  flag: string;
  /** Its environment variable, e.g. `COMET_JWT_SECRET`. */
  variable: string;
  /** The value's placeholder in the help, e.g. `SECRET`; empty for a switch. */
  arg: string;
  /** What it does, as `--help` says. */
  help: string;
}

/**
 * Every setting of the `comet` command, in the order of `--help`, with its
 * environment variable (see {@linkcode envName}). `--config` and `--help`
 * are not settings and have no variable.
 *
 * @example
 * ```ts
 * import { listSettings } from "./config.ts";
 * const jwt = listSettings().find((s) => s.flag === "--jwt-secret");
 * console.log(jwt?.variable); // "COMET_JWT_SECRET"
 * ```
 */
export function listSettings(): SettingInfo[] {
  return FLAGS.map((f) => ({
    flag: `--${f.name}`,
    variable: envName(f.name),
    arg: f.arg,
    help: f.help,
  }));
}

/** A fresh configuration at the defaults, which the sources then change. */
function _defaults(): CliConfig {
  const d = DEFAULTS;
  return {
    tcp: { ...d.tcp },
    ws: { ...d.ws },
    tcpTls: false,
    pkg: false,
    pkgHeader: d.pkgHeader,
    api: { ...d.api },
    apiHeaderTimeout: d.apiHeaderTimeout,
    apiBodyTimeout: d.apiBodyTimeout,
    apiIdleTimeout: d.apiIdleTimeout,
    apiMaxConnections: d.apiMaxConnections,
    handshakeTimeout: d.handshakeTimeout,
    heartbeatTimeout: d.heartbeatTimeout,
    maxBody: d.maxBody,
    buckets: d.buckets,
    queueSize: d.queueSize,
    writeConcurrency: d.writeConcurrency,
    writeBurst: d.writeBurst,
    slow: d.slow,
    writeTimeout: d.writeTimeout,
    maxBacklog: d.maxBacklog,
    roomBacklog: d.roomBacklog,
    historySize: d.historySize,
    historyTtl: d.historyTtl,
    historyMemory: d.historyMemory,
    log: d.log,
    logFormat: d.logFormat,
    traceMids: [],
    auth: d.auth,
    insecureOpenAuth: false,
    limits: { ...d.limits },
    workers: d.workers,
    help: false,
    version: false,
  };
}

/** What one source gave for one flag, and how messages name it there. */
interface _Given {
  flag: Flag;
  values: string[];
  /** `--name` for a flag or a config key, the variable for the environment. */
  label: string;
}

/** Applies one source's settings; a repeatable flag's list replaces the sources' below. */
function _applyGiven(cfg: CliConfig, given: readonly _Given[], names: SettingNames): void {
  const reset = new Set<Flag>();
  for (const { flag, values, label } of given) {
    if (flag.reset && !reset.has(flag)) {
      reset.add(flag);
      flag.reset(cfg);
    }
    for (const value of values) {
      try {
        flag.parse(value, cfg);
      } catch (err) {
        throw new ConfigError(`Invalid value for ${label}: ${(err as Error).message}`);
      }
    }
    names.given(flag.name, label);
  }
}

/** How a command looks a variable up: its value, or `undefined` when unset. */
export type EnvLookup = (name: string) => string | undefined;

/** Every flag's variable that is set; empty or blank reads as unset. */
function _fromEnv(env: EnvLookup): _Given[] {
  const given: _Given[] = [];
  for (const flag of FLAGS) {
    const label = envName(flag.name);
    const raw = env(label);
    if (raw === undefined || raw.trim() === "") continue;
    let value = raw;
    if (flag.arg === "") {
      // A switch: `1` is what shells and platform dashboards usually set.
      const word = raw.trim().toLowerCase();
      if (word === "1" || word === "true") value = "true";
      else if (word === "0" || word === "false") value = "false";
      else throw new ConfigError(`Invalid value for ${label}: Must be 1, 0, true or false: ${raw}`);
    }
    given.push({ flag, values: [value], label });
  }
  return given;
}

/** The auth mode a flag belongs to; open auth's switch counts as one. */
const _MODE_OF = new Map<string, AuthMode>([
  ...AUTH_FLAGS.map(([, flag, mode]) => [flag, mode] as const),
  ["insecure-open-auth", "open"],
]);

const _JWT_KEYS = ["jwt-secret", "jwt-public-key"];

/**
 * Applies the sources from the lowest, the environment, to the highest,
 * the flags, then checks the whole.
 */
function _resolve(
  env: readonly _Given[],
  file: readonly _Given[],
  flags: readonly _Given[],
  names: SettingNames,
): CliConfig {
  const cfg = _defaults();
  // A variable of one auth mode counts only under that mode, so that one
  // environment may hold every mode's secrets: it waits until the file and
  // the flags have settled the mode.
  const scoped = env.filter((g) => _MODE_OF.has(g.flag.name));
  _applyGiven(cfg, env.filter((g) => !_MODE_OF.has(g.flag.name)), names);
  _applyGiven(cfg, file, names);
  _applyGiven(cfg, flags, names);
  const keyAbove = _JWT_KEYS.some((k) => names.givenAbove(k));
  _applyGiven(
    cfg,
    scoped.filter((g) =>
      _MODE_OF.get(g.flag.name) === cfg.auth && !names.givenAbove(g.flag.name) &&
      // A key given above replaces the environment's, of either kind.
      !(keyAbove && _JWT_KEYS.includes(g.flag.name))
    ),
    names,
  );
  checkCombinations(cfg, names);
  return cfg;
}

/**
 * Reads the settings of the `comet` command from the environment alone,
 * through the same table and checks as {@linkcode parseConfig}: every
 * flag's variable (see {@linkcode envName}), a switch as `1` or `0`, an
 * empty variable as unset. Messages name the variables. The edge entry
 * (`src/edge.ts`) reads its settings with it.
 *
 * @throws {ConfigError} Naming the variable whose value is invalid, or the
 * variables that do not go together.
 *
 * @example
 * ```ts
 * import { parseEnvConfig } from "./config.ts";
 *
 * const env: Record<string, string> = { COMET_QUEUE: "16", COMET_UPSTREAM_RATE: "0" };
 * const cfg = parseEnvConfig((name) => env[name]);
 * console.log(cfg.queueSize, cfg.limits.upstreamRate); // 16 Infinity
 * ```
 */
export function parseEnvConfig(env: EnvLookup): CliConfig {
  return _resolve(_fromEnv(env), [], [], new SettingNames("env"));
}

/** Options for {@linkcode parseConfig}. */
export interface ParseConfigOptions {
  /** Environment lookup for every flag's variable (see {@linkcode envName}). Default: none. */
  env?: EnvLookup;
  /** Reads a `--config` file. Default: `Deno.readTextFileSync`. */
  readFile?: (path: string) => string;
}

/**
 * Parses command-line flags (`--name value` or `--name=value`; a flag without
 * a value such as `--insecure-open-auth` stands alone), an optional
 * `--config FILE` of the same names without dashes (such a flag is `true`
 * there, a repeatable one may be an array), and the environment as
 * {@linkcode parseEnvConfig} reads it. Precedence: flags, then the file,
 * then the environment, then defaults. A variable that belongs to an auth
 * mode other than the one chosen is ignored (`COMET_JWT_SECRET` under
 * `--auth webhook`), as is the environment's JWT key when the file or a
 * flag gives one.
 *
 * @throws {ConfigError} Naming the bad flag, variable, value or file.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const cfg = parseConfig(["--tcp", ":3101", "--heartbeat-timeout=1m"]);
 * console.log(cfg.heartbeatTimeout); // 60000
 * ```
 */
export function parseConfig(args: readonly string[], options: ParseConfigOptions = {}): CliConfig {
  const flags: _Given[] = [];
  let help = false;
  let version = false;
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    if (arg === "--version" || arg === "-V") {
      version = true;
      continue;
    }
    const m = /^--([a-z][a-z-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new ConfigError(`Unexpected argument: ${arg}`);
    const name = m[1]!;
    const flag = FLAGS.find((f) => f.name === name);
    if (name !== "config" && !flag) throw new ConfigError(`Unknown flag: --${name}`);
    let value = m[2];
    if (value === undefined) {
      if (flag?.arg === "") value = "true";
      else if (i + 1 >= args.length) throw new ConfigError(`Missing value for --${name}`);
      else value = args[++i]!;
    }
    if (!flag) file = value;
    else flags.push({ flag, values: [value], label: `--${name}` });
  }
  const env = options.env ? _fromEnv(options.env) : [];
  const fromFile = file === undefined ? [] : _fromFile(file, options.readFile);
  const cfg = _resolve(env, fromFile, flags, new SettingNames("flag"));
  cfg.help = help;
  cfg.version = version;
  return cfg;
}

/** The settings of a `--config` file. */
function _fromFile(
  file: string,
  readFile: (path: string) => string = Deno.readTextFileSync,
): _Given[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFile(file));
  } catch (err) {
    throw new ConfigError(`Cannot read config file ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`Config file ${file} is not a JSON object`);
  }
  const given: _Given[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    const flag = FLAGS.find((f) => f.name === key);
    if (!flag) throw new ConfigError(`Unknown config key in ${file}: ${key}`);
    const values: unknown[] = Array.isArray(value) && flag.reset ? value : [value];
    given.push({
      flag,
      label: `--${key}`,
      values: values.map((v) => {
        if (typeof v === "boolean" && flag.arg === "") return String(v);
        if (typeof v !== "string" && typeof v !== "number") {
          throw new ConfigError(`Config key ${key} must be a string or number`);
        }
        return String(v);
      }),
    });
  }
  return given;
}
