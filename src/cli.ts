/**
 * The `comet` command: a goim-compatible push server on TCP with the goim
 * push API, alone or as one node of a cluster (`--redis`). Run
 * `deno task start --help` for its flags.
 *
 * @module
 */
import type { Cluster } from "./cluster/cluster.ts";
import { MemoryCluster } from "./cluster/memory_cluster.ts";
import { RedisCluster } from "./cluster/redis_cluster.ts";
import { cometOptionsFromConfig } from "./comet_options.ts";
import { checkExposure, type CliConfig, ConfigError, parseConfig, usage } from "./config.ts";
import { denoEnv } from "./config_names.ts";
import { DEFAULTS } from "./defaults.ts";
import { createLogger, type Logger } from "./log.ts";
import { serve } from "./serve.ts";
import { DESCRIPTOR_RESERVE, fitConnections, readDescriptorLimit } from "./transport/fd_limit.ts";

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
    if (!cfg.help) checkExposure(cfg);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`comet: ${err.message}`);
    return 2;
  }
  if (cfg.help) {
    console.log(usage());
    return 0;
  }
  const logger = createLogger({ level: cfg.log, format: cfg.logFormat });
  if (unreadable.length > 0) {
    logger.warn("COMET_* variables the process may not read count as unset: pass --allow-env", {
      unreadable: unreadable.length,
    });
  }
  _fitDescriptors(cfg, logger);
  // Ends webhook calls still in flight once the server has stopped.
  const stopped = new AbortController();
  let hub;
  try {
    hub = await cometOptionsFromConfig(cfg, { logger, signal: stopped.signal });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`comet: ${err.message}`);
    return 2;
  }
  let tls;
  if (cfg.tlsCert !== undefined && cfg.tlsKey !== undefined) {
    try {
      tls = { cert: Deno.readTextFileSync(cfg.tlsCert), key: Deno.readTextFileSync(cfg.tlsKey) };
    } catch (err) {
      console.error(`comet: cannot read TLS certificate or key: ${(err as Error).message}`);
      return 2;
    }
  }
  let cluster: Cluster | undefined;
  if (cfg.redis !== undefined) {
    try {
      cluster = await RedisCluster.connect(cfg.redis, {
        logger,
        ...(cfg.nodeId !== undefined && { nodeId: cfg.nodeId }),
        ...(cfg.sessionTtl !== undefined && { sessionTtl: cfg.sessionTtl }),
        ...(cfg.reportInterval !== undefined && { reportInterval: cfg.reportInterval }),
      });
    } catch (err) {
      // Starting alone would silently split the cluster; better not start at all.
      console.error(`comet: cannot join the cluster: ${(err as Error).message}`);
      return 1;
    }
  } else if (cfg.nodeId !== undefined) {
    cluster = new MemoryCluster({ nodeId: cfg.nodeId });
  }
  let server;
  try {
    server = serve({
      tcp: cfg.tcp,
      ws: cfg.ws,
      ...(tls &&
        { tls, tcpTls: cfg.tcpTls, wss: cfg.wss ?? { ...DEFAULTS.wss } }),
      pkg: cfg.pkg && { ...cfg.pkg, headerSize: cfg.pkgHeader },
      api: cfg.api,
      ...(cfg.apiToken !== undefined && { apiToken: cfg.apiToken }),
      apiHeaderTimeout: cfg.apiHeaderTimeout,
      apiBodyTimeout: cfg.apiBodyTimeout,
      apiIdleTimeout: cfg.apiIdleTimeout,
      apiMaxConnections: cfg.apiMaxConnections,
      ...hub,
      ...(cluster !== undefined && { cluster }),
      ...(cfg.advertise !== undefined && { domain: cfg.advertise }),
    });
  } catch (err) {
    // serve() closes the cluster it was given when it throws; wait for that to finish.
    await cluster?.close();
    console.error(`comet: cannot listen: ${(err as Error).message}`);
    return 1;
  }
  const host = server.addrs.tcp?.hostname ?? server.addrs.ws?.hostname;
  const wildcard = host === "0.0.0.0" || host === "::";
  if (cfg.redis !== undefined && cfg.advertise === undefined && wildcard) {
    logger.warn("Other nodes list this one by a wildcard address: set --advertise", { host });
  }
  const listening: Record<string, string> = {};
  for (const [name, addr] of Object.entries(server.addrs)) {
    listening[name] = `${addr.hostname}:${addr.port}`;
  }
  logger.info("Comet listening", { ...listening, auth: cfg.auth });
  let stopping = false;
  const stop = (signal: string) => {
    // A signal sent to the whole process group (a supervisor, `timeout`) may arrive twice.
    if (stopping) return;
    stopping = true;
    logger.info("Shutting down", { signal });
    const hard = setTimeout(() => {
      logger.error("Shutdown took too long; exiting");
      Deno.exit(1);
    }, _HARD_EXIT_MS);
    server.shutdown().finally(() => clearTimeout(hard));
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((s) => [s, () => stop(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  await server.finished;
  stopped.abort();
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  logger.info("Stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
