/**
 * A server as the `comet` command's settings ask for it: the hub, the TLS
 * certificate, the cluster and the listeners. The command runs it in its
 * own isolate with `--workers 1`, and each worker runs it with more.
 *
 * @module
 */
import type { Cluster } from "./cluster/cluster.ts";
import { MemoryCluster } from "./cluster/memory_cluster.ts";
import { RedisCluster } from "./cluster/redis_cluster.ts";
import { cometOptionsFromConfig } from "./comet_options.ts";
import type { CliConfig } from "./cli_config.ts";
import { ConfigError } from "./config_error.ts";
import { DEFAULTS } from "./defaults.ts";
import type { Logger } from "./log.ts";
import { type CometServer, serve, type ServerAddrs } from "./serve.ts";
import { AddressInUseError } from "./transport/listen_error.ts";

// The flag of each listener, by its name in ServerAddrs.
const _FLAGS: Record<string, string> = {
  tcp: "--tcp",
  ws: "--ws",
  tcpTls: "--tcp-tls",
  wss: "--wss",
  pkg: "--pkg",
  api: "--api",
};

/**
 * The server could not start: `message` is the one line the command
 * prints after `comet: `, `code` its exit status (2 for settings that
 * cannot work, a port already in use among them; 1 for a cluster or a
 * port that cannot be had otherwise).
 *
 * @example
 * ```ts
 * import { StartError } from "./serve_config.ts";
 * const err = new StartError("cannot listen: Address in use", 1);
 * console.log(err.name, err.code); // StartError 1
 * ```
 */
export class StartError extends Error {
  /** The exit status the command ends with. */
  readonly code: number;

  /** Creates the error; `message` starts in lower case, as the command prints it after `comet: `. */
  constructor(message: string, code: number) {
    super(message);
    this.name = "StartError";
    this.code = code;
  }
}

/** Options for {@linkcode serveConfig}. */
export interface ServeConfigOptions {
  /** Where the hub, the cluster and the webhook client log. */
  logger: Logger;
  /** Aborting ends the webhook calls still in flight. */
  signal: AbortSignal;
  /**
   * The cluster the server joins; called once the hub's settings and the
   * certificate are read. Default {@linkcode clusterFromConfig}.
   */
  cluster?: () => Promise<Cluster | undefined>;
}

/**
 * Joins the cluster `cfg` names: a {@linkcode RedisCluster} with `--redis`,
 * else a single {@linkcode MemoryCluster} named `nodeId` when there is one,
 * else none (the server makes its own).
 *
 * @throws {StartError} When Redis cannot be reached (code 1): starting
 * alone would silently split the cluster.
 *
 * @example
 * ```ts
 * import { clusterFromConfig } from "./serve_config.ts";
 * import { parseConfig } from "./config.ts";
 * import { silentLogger } from "./log.ts";
 *
 * const cluster = await clusterFromConfig(parseConfig(["--node-id", "n1"]), silentLogger);
 * await cluster?.close();
 * ```
 */
export async function clusterFromConfig(
  cfg: CliConfig,
  logger: Logger,
  nodeId: string | undefined = cfg.nodeId,
): Promise<Cluster | undefined> {
  if (cfg.redis !== undefined) {
    try {
      return await RedisCluster.connect(cfg.redis, {
        logger,
        ...(nodeId !== undefined && { nodeId }),
        ...(cfg.sessionTtl !== undefined && { sessionTtl: cfg.sessionTtl }),
        ...(cfg.reportInterval !== undefined && { reportInterval: cfg.reportInterval }),
      });
    } catch (err) {
      throw new StartError(`cannot join the cluster: ${(err as Error).message}`, 1);
    }
  }
  return nodeId !== undefined ? new MemoryCluster({ nodeId }) : undefined;
}

/**
 * Starts the server `cfg` describes and resolves with it, listening.
 *
 * @throws {StartError} When a key, certificate, the cluster or a port
 * cannot be had; nothing is left running then.
 *
 * @example
 * ```ts ignore
 * import { parseConfig } from "./config.ts";
 * import { createLogger } from "./log.ts";
 * import { serveConfig } from "./serve_config.ts";
 *
 * const server = await serveConfig(parseConfig(["--tcp", "127.0.0.1:0"]), {
 *   logger: createLogger(),
 *   signal: new AbortController().signal,
 * });
 * await server.shutdown();
 * ```
 */
export async function serveConfig(
  cfg: CliConfig,
  options: ServeConfigOptions,
): Promise<CometServer> {
  const { logger } = options;
  let hub;
  try {
    hub = await cometOptionsFromConfig(cfg, { logger, signal: options.signal });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new StartError(err.message, 2);
  }
  let tls;
  if (cfg.tlsCert !== undefined && cfg.tlsKey !== undefined) {
    try {
      tls = { cert: Deno.readTextFileSync(cfg.tlsCert), key: Deno.readTextFileSync(cfg.tlsKey) };
    } catch (err) {
      throw new StartError(`cannot read TLS certificate or key: ${(err as Error).message}`, 2);
    }
  }
  const cluster = await (options.cluster ?? (() => clusterFromConfig(cfg, logger)))();
  try {
    return serve({
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
      historySize: cfg.historySize,
      historyTtl: cfg.historyTtl,
      historyMemory: cfg.historyMemory,
      ...(cluster !== undefined && { cluster }),
      ...(cfg.advertise !== undefined && { domain: cfg.advertise }),
    });
  } catch (err) {
    // serve() closes the cluster it was given when it throws; wait for that to finish.
    await cluster?.close();
    if (err instanceof AddressInUseError) {
      const flag = _FLAGS[err.listener ?? ""];
      const what = flag === undefined ? err.address : `${flag} ${err.address}`;
      throw new StartError(`cannot listen: ${what} is already in use`, 2);
    }
    throw new StartError(`cannot listen: ${(err as Error).message}`, 1);
  }
}

/**
 * @internal Logs where the command listens, once for the process, and warns when a
 * cluster node would be listed by a wildcard address.
 */
export function logListening(
  logger: Logger,
  cfg: CliConfig,
  addrs: ServerAddrs,
  fields: Record<string, unknown> = {},
): void {
  const host = addrs.tcp?.hostname ?? addrs.ws?.hostname;
  const wildcard = host === "0.0.0.0" || host === "::";
  if (cfg.redis !== undefined && cfg.advertise === undefined && wildcard) {
    logger.warn("Other nodes list this one by a wildcard address: set --advertise", { host });
  }
  const listening: Record<string, string> = {};
  for (const [name, addr] of Object.entries(addrs)) {
    listening[name] = `${addr.hostname}:${addr.port}`;
  }
  logger.info("Comet listening", { ...listening, auth: cfg.auth, ...fields });
}
