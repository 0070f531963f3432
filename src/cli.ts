/**
 * The `comet` command: a goim-compatible push server on TCP with the goim
 * push API, alone or as one node of a cluster (`--redis`). Run
 * `deno task start --help` for its flags.
 *
 * @module
 */
import { checkExposure, type CliConfig, ConfigError, parseConfig, usage } from "./config.ts";
import { denoEnv } from "./config_names.ts";
import { DEFAULTS } from "./defaults.ts";
import { createLogger, type Logger } from "./log.ts";
import { logListening, serveConfig, StartError } from "./serve_config.ts";
import { DESCRIPTOR_RESERVE, fitConnections, readDescriptorLimit } from "./transport/fd_limit.ts";
import { versionLine } from "./version.ts";
import { reusePortAvailable, Supervisor, workerCount, workerNodeId } from "./workers/supervisor.ts";

/** Longest a signal-triggered shutdown may take before the process exits anyway. */
const _HARD_EXIT_MS = 10_000;

/**
 * Holds the connection limits to the descriptor limit (`ulimit -n`), which
 * is often far below the default `--max-connections`: past it, `accept()`
 * fails with EMFILE for clients and API alike. Limits left at their
 * defaults are lowered to fit; limits given explicitly are kept, with a
 * warning. Nothing happens where the limit cannot be read.
 */
function _fitDescriptors(cfg: CliConfig, logger: Logger): void {
  const fds = readDescriptorLimit();
  if (fds === undefined) {
    logger.debug(
      "Descriptor limit unknown: reading it takes --allow-all or --allow-run=sh; keep ulimit -n above the connection limits",
    );
  }
  if (fds === undefined || fds.soft === Infinity) return;
  const wanted = {
    connections: cfg.limits.maxConnections,
    api: cfg.api ? cfg.apiMaxConnections : 0,
  };
  // Each webhook call in flight holds a socket too.
  const reserve = DESCRIPTOR_RESERVE +
    (cfg.auth === "webhook" ? cfg.webhookConcurrency ?? DEFAULTS.webhookConcurrency : 0);
  if (wanted.connections + wanted.api + reserve <= fds.soft) return;
  const fit = fitConnections(fds.soft, wanted, {
    reserve,
    lower: {
      connections: wanted.connections === DEFAULTS.limits.maxConnections,
      api: cfg.apiMaxConnections === DEFAULTS.apiMaxConnections,
    },
  });
  cfg.limits.maxConnections = fit.connections;
  if (cfg.api) cfg.apiMaxConnections = fit.api;
  const fields = {
    limit: fds.soft,
    hard: String(fds.hard),
    maxConnections: String(fit.connections),
    apiMaxConnections: String(fit.api),
  };
  if (fit.connections + fit.api + reserve <= fds.soft) {
    logger.warn(
      "Descriptor limit below the default connection limits: lowered them to fit; raise ulimit -n to serve more",
      fields,
    );
  } else {
    logger.warn(
      "Descriptor limit below the connection limits: past it, connections wait or are refused; raise ulimit -n or lower --max-connections and --api-max-connections",
      fields,
    );
  }
}

/**
 * Runs the CLI with `args`; resolves with the exit status once the server
 * has stopped.
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 * Deno.exit(await main(["--tcp", "127.0.0.1:3101"]));
 * ```
 */
export async function main(args: readonly string[]): Promise<number> {
  let cfg;
  // Every flag has a variable: a prompt for each would be no way to start.
  const unreadable: string[] = [];
  try {
    cfg = parseConfig(args, { env: denoEnv((name) => unreadable.push(name)) });
    if (!cfg.help && !cfg.version) checkExposure(cfg);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`comet: ${err.message}`);
    return 2;
  }
  if (cfg.help) {
    console.log(usage());
    return 0;
  }
  if (cfg.version) {
    console.log(versionLine());
    return 0;
  }
  const logger = createLogger({ level: cfg.log, format: cfg.logFormat });
  if (unreadable.length > 0) {
    logger.warn("COMET_* variables the process may not read count as unset: pass --allow-env", {
      unreadable: unreadable.length,
    });
  }
  _fitDescriptors(cfg, logger);
  const workers = workerCount(cfg.workers);
  if (workers === 1) return await _serveAlone(cfg, logger);
  return await _serveWorkers(cfg, workers, logger);
}

/** What {@linkcode _onSignals} gives: where the first signal goes, and how to stop listening. */
interface _Signals {
  /** Calls `stop` on the first SIGINT or SIGTERM, at once if one came already. */
  onStop(stop: (signal: string) => void): void;
  unlisten(): void;
}

/**
 * Listens for SIGINT and SIGTERM before the server starts: a signal listener
 * takes a descriptor, and once clients are being accepted none may be left
 * (Deno then panics). A signal that comes before `onStop` waits for it.
 */
function _onSignals(): _Signals {
  let got: string | undefined;
  let stop: ((signal: string) => void) | undefined;
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((s) =>
    [s, () => {
      // A signal sent to the whole process group (a supervisor, `timeout`) may arrive twice.
      if (got !== undefined) return;
      got = s;
      stop?.(s);
    }] as const
  );
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  return {
    onStop(fn) {
      stop = fn;
      if (got !== undefined) fn(got);
    },
    unlisten() {
      for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    },
  };
}

/** `--workers 1`: one hub in this isolate, no Worker at all. */
async function _serveAlone(cfg: CliConfig, logger: Logger): Promise<number> {
  // Ends webhook calls still in flight once the server has stopped.
  const stopped = new AbortController();
  const signals = _onSignals();
  let server;
  try {
    server = await serveConfig(cfg, { logger, signal: stopped.signal });
  } catch (err) {
    signals.unlisten();
    if (!(err instanceof StartError)) throw err;
    console.error(`comet: ${err.message}`);
    return err.code;
  }
  logListening(logger, cfg, server.addrs);
  signals.onStop((signal) => {
    logger.info("Shutting down", { signal });
    const hard = setTimeout(() => {
      logger.error("Shutdown took too long; exiting");
      Deno.exit(1);
    }, _HARD_EXIT_MS);
    server.shutdown().finally(() => clearTimeout(hard));
  });
  await server.finished;
  stopped.abort();
  signals.unlisten();
  logger.info("Stopped");
  return 0;
}

/** `--workers N`: N workers on the same ports, run by a {@linkcode Supervisor}. */
async function _serveWorkers(cfg: CliConfig, workers: number, logger: Logger): Promise<number> {
  const asked = cfg.workers === "auto"
    ? `--workers auto (${workers} CPUs)`
    : `--workers ${workers}`;
  if (!reusePortAvailable()) {
    console.error(
      `comet: ${asked} shares each port between workers (reusePort), which needs --unstable-net: run deno with --unstable-net, or pass --workers 1`,
    );
    return 2;
  }
  // One name for the process: the workers' bus node, and the stem of their Redis node ids.
  cfg.nodeId ??= crypto.randomUUID();
  if (cfg.redis !== undefined && workerNodeId(cfg.nodeId, workers - 1).length > 64) {
    console.error(
      `comet: --node-id ${cfg.nodeId} is too long for ${asked}: each worker is node ${
        workerNodeId(cfg.nodeId, workers - 1)
      }, at most 64 characters`,
    );
    return 2;
  }
  const supervisor = new Supervisor({ config: cfg, workers, logger });
  // Before the workers accept anyone: their clients share this process's descriptors.
  const signals = _onSignals();
  let addrs;
  try {
    addrs = await supervisor.start();
  } catch (err) {
    signals.unlisten();
    if (!(err instanceof StartError)) throw err;
    console.error(`comet: ${err.message}`);
    return err.code;
  }
  logListening(logger, cfg, addrs, { workers });
  let stopped!: (ok: boolean) => void;
  const finished = new Promise<boolean>((resolve) => stopped = resolve);
  signals.onStop((signal) => {
    logger.info("Shutting down", { signal, workers });
    void supervisor.shutdown(_HARD_EXIT_MS).then(stopped);
  });
  const ok = await finished;
  signals.unlisten();
  if (!ok) {
    logger.error("Shutdown took too long; exiting");
    return 1;
  }
  logger.info("Stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
