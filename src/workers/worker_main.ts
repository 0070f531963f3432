/**
 * The entry of one worker of the `comet` command (`--workers N`): waits for
 * the supervisor's `start`, serves the settings it was given on ports it
 * shares with the other workers (`reusePort`), joins them over the ports
 * the supervisor hands out (`peer`, `peerGone`), and answers the
 * supervisor's `stats`, `restarts`, `shutdown` and `crash` until it is
 * told to shut down. See `supervisor.ts`.
 *
 * @module
 */
import type { CliConfig } from "../cli_config.ts";
import type { Cluster } from "../cluster/cluster.ts";
import { BusCluster } from "../cluster/bus_cluster.ts";
import { PortMesh } from "../cluster/bus_port_mesh.ts";
import { createLogger } from "../log.ts";
import type { CometServer } from "../serve.ts";
import { clusterFromConfig, serveConfig, StartError } from "../serve_config.ts";
import type { FromWorker, ToWorker, WorkerAddr } from "./messages.ts";
import { workerNodeId } from "./supervisor.ts";
import { setWorkerInfo } from "./worker_info.ts";

/** The parts of a worker's global scope this entry uses. */
interface _Scope {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  close(): void;
}

/**
 * The cluster a worker joins without `--redis`: the process's one node,
 * shared by its `workers` workers over the ports in `mesh`. Given the
 * count, it orders each stream at the worker that owns it (a restart keeps
 * the number, so the same worker owns the same streams, under new epochs).
 */
function _workerCluster(
  cfg: CliConfig,
  workerId: number,
  workers: number,
  mesh: PortMesh,
): Cluster {
  return new BusCluster({
    workerId,
    workers,
    transport: mesh,
    ...(cfg.nodeId !== undefined && { nodeId: cfg.nodeId }),
  });
}

/** Runs one worker on `scope` until the supervisor says to shut down. */
function _run(scope: _Scope): void {
  let starting: Promise<CometServer | undefined> | undefined;
  const stopped = new AbortController();
  // Made at once, so that ports handed out while the server starts are kept; their
  // messages wait in them until the cluster listens. Closed (and every port it gets
  // afterwards with it) by the cluster, or at once with --redis.
  const mesh = new PortMesh();
  const start = async (msg: Extract<ToWorker, { type: "start" }>) => {
    const cfg = msg.config;
    for (const peer of msg.peers) mesh.connect(peer.workerId, peer.port);
    if (cfg.redis !== undefined) mesh.close();
    setWorkerInfo({ workerId: msg.workerId, workers: msg.workers, restarts: msg.restarts });
    const logger = createLogger({ level: cfg.log, format: cfg.logFormat });
    try {
      const server = await serveConfig(cfg, {
        logger,
        signal: stopped.signal,
        cluster: () =>
          cfg.redis !== undefined
            ? clusterFromConfig(cfg, logger, workerNodeId(cfg.nodeId!, msg.workerId))
            : Promise.resolve(_workerCluster(cfg, msg.workerId, msg.workers, mesh)),
      });
      const addrs: Record<string, WorkerAddr> = {};
      for (const [name, addr] of Object.entries(server.addrs)) {
        addrs[name] = { hostname: addr.hostname, port: addr.port };
      }
      scope.postMessage({ type: "ready", addrs });
      return server;
    } catch (err) {
      if (!(err instanceof StartError)) throw err;
      scope.postMessage({ type: "failed", message: err.message, code: err.code });
      return undefined;
    }
  };
  scope.onmessage = ({ data: msg }) => {
    switch (msg.type) {
      case "start":
        starting ??= start(msg);
        break;
      case "peer":
        mesh.connect(msg.workerId, msg.port);
        break;
      case "peerGone":
        mesh.disconnect(msg.workerId);
        break;
      case "restarts":
        setWorkerInfo({ restarts: msg.count });
        break;
      case "stats":
        void (starting ?? Promise.resolve(undefined)).then((server) =>
          scope.postMessage({ type: "stats", connections: server?.comet.connections ?? 0 })
        );
        break;
      case "shutdown":
        void (async () => {
          const server = await (starting ?? Promise.resolve(undefined)).catch(() => undefined);
          await server?.shutdown();
          stopped.abort();
          scope.postMessage({ type: "stopped" });
          scope.close();
        })();
        break;
      case "crash":
        setTimeout(() => {
          throw new Error("Crash asked by the supervisor");
        }, 0);
        break;
    }
  };
}

if ("WorkerGlobalScope" in globalThis) _run(globalThis as unknown as _Scope);
