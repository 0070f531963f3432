/**
 * The supervisor of the `comet` command's workers (`--workers N`): starts N
 * Workers, each serving the same settings on the same ports (`reusePort`,
 * so the kernel spreads connections over them), restarts one that dies and
 * drains them all on shutdown.
 *
 * Port 0 works: worker 0 binds first and reports the ports it got; the
 * others, and every restarted worker, bind those same ports.
 *
 * Without `--redis` the workers are one node joined by a bus of
 * `MessagePort`s (a `PortMesh` in each): the supervisor makes one
 * `MessageChannel` per pair of workers and transfers an end to each. A
 * worker that starts (or restarts) gets a port to every live worker, and
 * each live worker the other end; when a worker dies, every live one is told
 * to drop its port. Ports rather than a `BroadcastChannel`: Deno's
 * `BroadcastChannel` drops the oldest messages of a receiver 256 behind, a
 * port never drops one (and is faster).
 *
 * @module
 */
import type { CliConfig } from "../cli_config.ts";
import { DEFAULTS } from "../defaults.ts";
import type { Logger } from "../log.ts";
import { silentLogger } from "../log.ts";
import type { ServerAddrs } from "../serve.ts";
import { StartError } from "../serve_config.ts";
import type { FromWorker, PeerPort, ToWorker } from "./messages.ts";

/** The listeners a worker config may hold, by their name in {@linkcode ServerAddrs}. */
const _LISTENERS = ["tcp", "ws", "tcpTls", "wss", "pkg", "api"] as const;

/** A worker that lived at least this long before dying restarts after the first delay again. */
const _STABLE_MS = 10_000;

/** Quick deaths in a row from which the supervisor calls it a crash loop. */
const _CRASH_LOOP = 3;

/**
 * The number of workers `setting` asks for: `auto` is one per CPU
 * (`navigator.hardwareConcurrency`), capped at {@linkcode DEFAULTS}`.maxWorkers`.
 *
 * @example
 * ```ts
 * import { workerCount } from "./supervisor.ts";
 * console.log(workerCount(4)); // 4
 * console.log(workerCount("auto") >= 1); // true
 * ```
 */
export function workerCount(setting: number | "auto"): number {
  const n = setting === "auto" ? navigator.hardwareConcurrency || 1 : setting;
  return Math.max(1, Math.min(DEFAULTS.maxWorkers, n));
}

/**
 * The node id of worker `workerId` of node `nodeId` in a Redis cluster,
 * where each worker is a node of its own.
 *
 * @example
 * ```ts
 * import { workerNodeId } from "./supervisor.ts";
 * console.log(workerNodeId("n1", 0)); // "n1-w0"
 * ```
 */
export function workerNodeId(nodeId: string, workerId: number): string {
  return `${nodeId}-w${workerId}`;
}

/**
 * Whether listeners may share a port (`reusePort`): only with
 * `--unstable-net`, and without it `Deno.listen` ends the process rather
 * than throw, so the command asks first. The flag also makes Deno's other
 * unstable network APIs appear, which is what this looks at.
 *
 * @example
 * ```ts
 * import { reusePortAvailable } from "./supervisor.ts";
 * console.log(typeof reusePortAvailable()); // "boolean"
 * ```
 */
export function reusePortAvailable(): boolean {
  return typeof (Deno as unknown as Record<string, unknown>).listenDatagram === "function";
}

/**
 * One worker's settings: `cfg` with every listener on `reusePort`, and the
 * process-wide limits (`--max-connections`, `--max-rooms`,
 * `--api-max-connections`) split evenly over `workers`, rounded up. Per-IP
 * limits and rates stay as given: each worker applies them to what it
 * serves.
 *
 * @example
 * ```ts
 * import { parseConfig } from "../config.ts";
 * import { workerConfig } from "./supervisor.ts";
 *
 * const share = workerConfig(parseConfig(["--max-connections", "1001"]), 2);
 * console.log(share.limits.maxConnections); // 501
 * ```
 */
export function workerConfig(cfg: CliConfig, workers: number): CliConfig {
  const share = structuredClone(cfg);
  const split = (n: number) => n === Infinity ? n : Math.ceil(n / workers);
  share.limits.maxConnections = split(cfg.limits.maxConnections);
  share.limits.maxRooms = split(cfg.limits.maxRooms);
  share.apiMaxConnections = split(cfg.apiMaxConnections);
  share.historyMemory = split(cfg.historyMemory);
  if (share.tlsCert !== undefined) share.wss ??= { ...DEFAULTS.wss };
  for (const name of _LISTENERS) {
    const addr = share[name];
    if (addr) addr.reusePort = true;
  }
  return share;
}

/** Options for {@linkcode Supervisor}. */
export interface SupervisorOptions {
  /** The process's settings; each worker gets its share (see {@linkcode workerConfig}). */
  config: CliConfig;
  /** Workers to run, at least 1. */
  workers: number;
  /** Where restarts are logged. Default: nowhere. */
  logger?: Logger;
  /** Wait before restarting a worker that died; doubles while it keeps dying. Default 100 ms. */
  restartDelay?: number;
  /** The longest wait before a restart. Default 5 s. */
  maxRestartDelay?: number;
}

/** One worker slot: its current Worker and what waits on it. */
interface _Slot {
  readonly id: number;
  worker: Worker | undefined;
  running: boolean;
  startedAt: number;
  quickDeaths: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  onStarted: ((result: ServerAddrs | StartError) => void) | undefined;
  stats: ((connections: number) => void)[];
  onStopped: (() => void) | undefined;
}

/**
 * Runs N workers (`src/workers/worker_main.ts`) and keeps them running.
 *
 * @example
 * ```ts ignore
 * import { parseConfig } from "../config.ts";
 * import { Supervisor } from "./supervisor.ts";
 *
 * const supervisor = new Supervisor({
 *   config: parseConfig(["--tcp", "127.0.0.1:0", "--api", "off"]),
 *   workers: 2,
 * });
 * const addrs = await supervisor.start();
 * console.log(addrs.tcp?.port, await supervisor.connections()); // 41234 [0, 0]
 * await supervisor.shutdown();
 * ```
 */
export class Supervisor {
  /** Workers run. */
  readonly workers: number;
  #config: CliConfig;
  #logger: Logger;
  #restartDelay: number;
  #maxRestartDelay: number;
  #slots: _Slot[] = [];
  #restarts = 0;
  #stopping = false;
  /** Whether the workers are joined by ports: with `--redis`, each is a node of its own. */
  #meshed: boolean;

  /** Prepares `options.workers` workers; {@linkcode Supervisor.start} starts them. */
  constructor(options: SupervisorOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new RangeError(`Workers must be an integer of at least 1: ${options.workers}`);
    }
    this.workers = options.workers;
    this.#config = workerConfig(options.config, options.workers);
    this.#meshed = options.config.redis === undefined;
    this.#logger = options.logger ?? silentLogger;
    this.#restartDelay = options.restartDelay ?? 100;
    this.#maxRestartDelay = options.maxRestartDelay ?? 5_000;
    for (let id = 0; id < this.workers; id++) {
      this.#slots.push({
        id,
        worker: undefined,
        running: false,
        startedAt: 0,
        quickDeaths: 0,
        timer: undefined,
        onStarted: undefined,
        stats: [],
        onStopped: undefined,
      });
    }
  }

  /** Workers restarted after dying, since the start. */
  get restarts(): number {
    return this.#restarts;
  }

  /**
   * Starts every worker and resolves with where they listen, once all
   * listen: worker 0 first, so that ports given as 0 are chosen once.
   *
   * @throws {StartError} When a worker cannot start (its message and exit
   * status); the others are stopped then.
   */
  async start(): Promise<ServerAddrs> {
    try {
      const addrs = await this.#launch(this.#slots[0]!);
      for (const name of _LISTENERS) {
        const addr = this.#config[name];
        const bound = addrs[name];
        if (addr && bound) addr.port = bound.port;
      }
      await Promise.all(this.#slots.slice(1).map((slot) => this.#launch(slot)));
      return addrs;
    } catch (err) {
      this.#stopping = true;
      for (const slot of this.#slots) this.#kill(slot);
      throw err;
    }
  }

  /** The connections each worker serves, by worker id; 0 for one not running. */
  connections(): Promise<number[]> {
    return Promise.all(this.#slots.map((slot) =>
      new Promise<number>((resolve) => {
        if (!slot.running) return resolve(0);
        slot.stats.push(resolve);
        this.#post(slot, { type: "stats" });
      })
    ));
  }

  /**
   * Makes worker `workerId` throw an uncaught error, the way a bug would,
   * so that the supervisor restarts it. For tests.
   */
  crash(workerId: number): void {
    const slot = this.#slots[workerId];
    if (!slot) throw new RangeError(`No worker ${workerId}: there are ${this.workers}`);
    this.#post(slot, { type: "crash" });
  }

  /**
   * Tells every worker to shut down (each sends op 6 to its clients and
   * closes), waits for all of them up to `timeout` ms, then ends every
   * worker still running. Resolves with whether all stopped in time.
   */
  async shutdown(timeout = 10_000): Promise<boolean> {
    this.#stopping = true;
    const waits = this.#slots.map((slot) => {
      clearTimeout(slot.timer);
      if (!slot.running) {
        this.#kill(slot);
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        slot.onStopped = resolve;
        this.#post(slot, { type: "shutdown" });
      });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), timeout));
    const done = await Promise.race([Promise.all(waits).then(() => true), late]);
    clearTimeout(timer);
    for (const slot of this.#slots) this.#kill(slot);
    return done;
  }

  /** Starts a Worker in `slot`; resolves once it listens. */
  #launch(slot: _Slot): Promise<ServerAddrs> {
    const worker = new Worker(new URL("./worker_main.ts", import.meta.url), { type: "module" });
    slot.worker = worker;
    slot.startedAt = Date.now();
    const started = new Promise<ServerAddrs>((resolve, reject) => {
      slot.onStarted = (result) => {
        slot.onStarted = undefined;
        if (result instanceof StartError) reject(result);
        else resolve(result);
      };
    });
    worker.onmessage = (event: MessageEvent<FromWorker>) => this.#heard(slot, event.data);
    worker.onerror = (event) => {
      // Unprevented, a worker's uncaught error ends the whole process.
      event.preventDefault();
      if (slot.worker !== worker) return;
      this.#died(slot, event.message);
    };
    const config = this.#config;
    const peers = this.#connect(slot);
    this.#post(slot, {
      type: "start",
      config,
      workerId: slot.id,
      workers: this.workers,
      restarts: this.#restarts,
      peers,
    }, peers.map((p) => p.port));
    return started;
  }

  /**
   * One `MessageChannel` between `slot`'s new worker and each other live
   * one: the other end goes to that worker now, this end is returned for
   * the start message. What either posts first waits in the port.
   */
  #connect(slot: _Slot): PeerPort[] {
    const peers: PeerPort[] = [];
    if (!this.#meshed) return peers;
    for (const other of this.#slots) {
      if (other === slot || other.worker === undefined) continue;
      const { port1, port2 } = new MessageChannel();
      peers.push({ workerId: other.id, port: port1 });
      this.#post(other, { type: "peer", workerId: slot.id, port: port2 }, [port2]);
    }
    return peers;
  }

  #heard(slot: _Slot, msg: FromWorker): void {
    switch (msg.type) {
      case "ready":
        slot.running = true;
        slot.onStarted?.(msg.addrs as ServerAddrs);
        break;
      case "failed":
        if (slot.onStarted) slot.onStarted(new StartError(msg.message, msg.code));
        break;
      case "stats":
        slot.stats.shift()?.(msg.connections);
        break;
      case "stopped":
        slot.running = false;
        slot.onStopped?.();
        break;
    }
  }

  /** A worker threw: during the start, the start fails; later, it is restarted. */
  #died(slot: _Slot, message: string): void {
    const wasRunning = slot.running;
    this.#kill(slot);
    if (slot.onStarted && !wasRunning) {
      slot.onStarted(new StartError(`worker ${slot.id} failed: ${message}`, 1));
      return;
    }
    if (this.#stopping) {
      slot.onStopped?.();
      return;
    }
    this.#scheduleRestart(slot, message);
  }

  #scheduleRestart(slot: _Slot, reason: string): void {
    const lived = Date.now() - slot.startedAt;
    slot.quickDeaths = lived < _STABLE_MS ? slot.quickDeaths + 1 : 1;
    const delay = Math.min(this.#maxRestartDelay, this.#restartDelay * 2 ** (slot.quickDeaths - 1));
    const fields = { worker: slot.id, error: reason, delay };
    if (slot.quickDeaths >= _CRASH_LOOP) {
      this.#logger.error("Worker keeps dying; restarting it after a longer wait", fields);
    } else {
      this.#logger.warn("Worker died; restarting it", fields);
    }
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (this.#stopping) return;
      this.#restarts++;
      this.#launch(slot).then(
        () => {
          this.#logger.info("Worker restarted", { worker: slot.id, restarts: this.#restarts });
          for (const other of this.#slots) {
            this.#post(other, { type: "restarts", count: this.#restarts });
          }
        },
        (err: Error) => {
          // A failed start (a port gone, Redis away) counts as another death.
          this.#kill(slot);
          if (!this.#stopping) this.#scheduleRestart(slot, err.message);
        },
      );
    }, delay);
  }

  #post(slot: _Slot, msg: ToWorker, transfer: Transferable[] = []): void {
    slot.worker?.postMessage(msg, transfer);
  }

  /**
   * Ends the slot's Worker at once, and answers what waited on it. Unless
   * all are stopping, the live workers drop their ports to it.
   */
  #kill(slot: _Slot): void {
    const had = slot.worker !== undefined;
    slot.running = false;
    slot.worker?.terminate();
    slot.worker = undefined;
    for (const resolve of slot.stats.splice(0)) resolve(0);
    if (!had || !this.#meshed || this.#stopping) return;
    for (const other of this.#slots) this.#post(other, { type: "peerGone", workerId: slot.id });
  }
}
