import type { Logger } from "../log.ts";
import type { Connection } from "../server/connection.ts";
// deno-lint-ignore no-unused-vars
import type { Comet, PushAllOptions } from "../server/comet.ts";
import type { CometObserver } from "../server/comet_observer.ts";
import type { OnlineTotal, PushTarget, RoomCount } from "../server/push.ts";
import { VERSION } from "../version.ts";
import type { HistoryLimits, StreamHistory } from "../server/streams.ts";

/**
 * Where a cluster stands: `connecting` until its broker first answers,
 * `ready` while pushes reach every node, `reconnecting` while this node
 * cannot reach the others (it keeps serving its own connections), `closed`
 * for good.
 *
 * @example
 * ```ts
 * import type { ClusterState } from "./cluster.ts";
 * import { MemoryCluster } from "./memory_cluster.ts";
 *
 * const cluster = new MemoryCluster();
 * await cluster.close();
 * const state: ClusterState = cluster.state;
 * console.log(state); // closed
 * ```
 */
export type ClusterState = "connecting" | "ready" | "reconnecting" | "closed";

/**
 * What a cluster needs of the hub it serves: it delivers pushes to it and
 * asks its online figures ({@linkcode PushTarget}), hooks into its sessions
 * as its observer, and registers its open sessions anew after losing its
 * broker. A {@linkcode Comet} is one.
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import type { ClusterHub } from "./cluster.ts";
 *
 * await using comet = new Comet();
 * const hub: ClusterHub = comet;
 * console.log(hub.connections); // 0
 * ```
 */
export interface ClusterHub extends PushTarget {
  /** Who hears of the hub's sessions and rooms; the cluster may set itself. */
  observer: CometObserver | undefined;
  /** The hub's heartbeat deadline in milliseconds: session entries must outlive it. */
  readonly heartbeatTimeout: number;
  /** Where the hub logs; a cluster without a logger of its own logs there too. */
  readonly logger: Logger;
  /** True once the hub is closing: pushes from other nodes are no longer delivered. */
  readonly closing: boolean;
  /** Authenticated connections. */
  readonly connections: number;
  /** The authenticated connection with `key`, if any. */
  channel(key: string): Connection | undefined;
  /** The open authenticated connections, to register anew. */
  openSessions(): Iterable<Connection>;
  /** As `deliver` with a push to keys (see {@linkcode Comet.pushKeys}). */
  pushKeys(keys: Iterable<string>, op: number, body: Uint8Array): number;
  /** As `deliver` with a push to users (see {@linkcode Comet.pushMids}). */
  pushMids(mids: Iterable<number>, op: number, body: Uint8Array): number;
  /** As `deliver` with a push to a room (see {@linkcode Comet.pushRoom}). */
  pushRoom(room: string, op: number, body: Uint8Array): number;
  /** As `deliver` with a push to everyone (see {@linkcode Comet.pushAll}). */
  pushAll(op: number, body: Uint8Array, options?: PushAllOptions): number;
}

/**
 * Where clients reach one node: what it advertises and its listening ports.
 *
 * @example
 * ```ts
 * import type { NodeAddress } from "./cluster.ts";
 *
 * const address: NodeAddress = { host: "203.0.113.7", tcpPort: 3101, wsPort: 3102, wssPort: 0 };
 * ```
 */
export interface NodeAddress {
  /** Host name or IP address clients should connect to. */
  host: string;
  /** goim TCP port, or 0 when not served. */
  tcpPort: number;
  /** WebSocket port, or 0 when not served. */
  wsPort: number;
  /** Secure WebSocket port, or 0 when not served. */
  wssPort: number;
}

/**
 * One live node of a cluster, as `/goim/nodes/instances` lists it.
 *
 * @example
 * ```ts
 * import type { Cluster, ClusterNode } from "./cluster.ts";
 *
 * function busiest(cluster: Cluster): ClusterNode | undefined {
 *   return cluster.nodes().sort((a, b) => b.connections - a.connections)[0];
 * }
 * ```
 */
export interface ClusterNode extends NodeAddress {
  /** The node's id, unique in the cluster. */
  id: string;
  /** Authenticated connections on the node when it last reported. */
  connections: number;
  /** Distinct client IP addresses on the node when it last reported. */
  ipCount: number;
  /** When the node last reported, in milliseconds since the epoch (its own clock). */
  updated: number;
  /** The node's Comet version; absent in a report from a node older than `--version`. */
  version?: string;
}

/**
 * What a cluster push did.
 *
 * @example
 * ```ts
 * import type { Cluster, ClusterPushResult } from "./cluster.ts";
 *
 * async function pushChat(cluster: Cluster, body: Uint8Array): Promise<void> {
 *   const result: ClusterPushResult = await cluster.pushRoom("live://1000", 1000, body);
 *   if (result.degraded) console.warn(`Only this node's ${result.local} connections got it`);
 * }
 * ```
 */
export interface ClusterPushResult {
  /** Connections on this node the message was queued to. */
  local: number;
  /** Other nodes the message was handed to the broker for. */
  remote: number;
  /**
   * True when the broker could not be reached: the message went to this
   * node's connections only.
   */
  degraded: boolean;
}

/**
 * What `/healthz` says about the cluster.
 *
 * @example
 * ```ts
 * import type { ClusterHealth } from "./cluster.ts";
 * import { MemoryCluster } from "./memory_cluster.ts";
 *
 * await using cluster = new MemoryCluster();
 * const health: ClusterHealth = cluster.health();
 * console.log(health.ok); // true
 * ```
 */
export interface ClusterHealth {
  /** False while this node cannot reach the others; `/healthz` then says `degraded`. */
  ok: boolean;
  /**
   * Fields `/healthz` adds to its answer, e.g. `{ node: "n1", broker:
   * "reconnecting" }`; empty for a single node, whose answer stays as it was.
   */
  detail: Record<string, string | number>;
}

/**
 * Comet nodes sharing pushes and online counts. The push API and the server
 * talk to a cluster instead of the hub: it delivers to this node's
 * connections itself and routes the rest to the nodes holding the targets.
 *
 * A cluster serves one hub: {@linkcode Cluster.attach} binds it (the server
 * does this once its listeners are up), which also hooks the cluster into
 * the hub's sessions through {@linkcode Comet.observer} where it needs them.
 * Implementations: {@linkcode MemoryCluster} (one process, the default) and
 * {@linkcode RedisCluster}.
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import type { Cluster } from "./cluster.ts";
 * import { MemoryCluster } from "./memory_cluster.ts";
 *
 * await using comet = new Comet();
 * await using cluster: Cluster = new MemoryCluster();
 * cluster.attach(comet, { host: "127.0.0.1", tcpPort: 3101, wsPort: 0, wssPort: 0 });
 * const result = await cluster.pushRoom("live://1000", 1000, new TextEncoder().encode("hi"));
 * console.log(result.local); // 0: nobody is connected
 * ```
 */
export interface Cluster extends AsyncDisposable {
  /** This node's id, unique in the cluster. */
  readonly nodeId: string;
  /** Where the cluster stands; see {@linkcode ClusterState}. */
  readonly state: ClusterState;
  /**
   * Binds the cluster to this node's hub and address and starts its
   * background work. Call once.
   *
   * @throws {TypeError} When already attached or closed.
   */
  attach(comet: ClusterHub, address: NodeAddress): void;
  /** Pushes to the connections with these keys that watch `op`, wherever they are. */
  pushKeys(keys: readonly string[], op: number, body: Uint8Array): Promise<ClusterPushResult>;
  /** Pushes to every connection of these users that watches `op`, wherever they are. */
  pushMids(mids: readonly number[], op: number, body: Uint8Array): Promise<ClusterPushResult>;
  /** Pushes to every member of `room`, on every node that has members. */
  pushRoom(room: string, op: number, body: Uint8Array): Promise<ClusterPushResult>;
  /** Pushes to every connection that watches `op`; `speed` is shared out among the nodes. */
  pushAll(op: number, body: Uint8Array, options?: PushAllOptions): Promise<ClusterPushResult>;
  /** Members of `room` online across the cluster. */
  roomOnline(room: string): number;
  /** The `limit` fullest rooms across the cluster whose id starts with `prefix`. */
  topRooms(prefix: string, limit: number): RoomCount[];
  /** Connections and client IPs across the cluster. */
  onlineTotal(): OnlineTotal;
  /** The live nodes, this one included, by id. */
  nodes(): ClusterNode[];
  /** What `/healthz` reports. */
  health(): ClusterHealth;
  /** Leaves the cluster and releases its resources. Idempotent. */
  close(): Promise<void>;
  /**
   * The workers of this process, when the node is several isolates joined
   * by a bus (`BusCluster`); absent for a node of one isolate. The
   * push API asks them for `/metrics`, `/admin` and node figures.
   */
  readonly workers?: WorkerGroup;
  /**
   * The history the hub of this node uses when streams are on, where the
   * cluster decides the order of streams (Redis, the worker that owns a
   * stream); absent, the hub keeps its own in memory.
   */
  history?(limits: HistoryLimits): StreamHistory;
  /** Pushes a node fetched from the shared history to fill gaps it noticed; absent: none. */
  readonly gapsFilled?: number;
}

/** What {@linkcode WorkerGroup.gather} brings back. */
export interface Gathered<T> {
  /** Each worker's answer, this worker's first (when it answers the topic), then by number. */
  replies: { workerId: number; value: T }[];
  /** Workers that did not answer in time, failed, or do not answer the topic, by number. */
  missing: number[];
}

/**
 * The isolates of one process that together are one node: each answers
 * questions about its own figures, and any of them can gather everyone's.
 *
 * @example
 * ```ts
 * import { BusCluster } from "./bus_cluster.ts";
 *
 * await using cluster = new BusCluster({ workerId: 0, channel: "comet-bus-example" });
 * cluster.workers.answer("load", () => 1);
 * const { replies, missing } = await cluster.workers.gather<number>("load");
 * console.log(replies, missing); // [{ workerId: 0, value: 1 }] []
 * ```
 */
export interface WorkerGroup {
  /** This worker's number. */
  readonly workerId: number;
  /** Sets what this worker answers for `topic`; the value must survive `structuredClone`. */
  answer(topic: string, responder: () => unknown): void;
  /**
   * Asks every live worker (this one included) for `topic`; resolves once all
   * have answered or after `timeout` ms (default 500), naming the missing.
   */
  gather<T>(topic: string, timeout?: number): Promise<Gathered<T>>;
  /** Distinct rooms with members across the workers. */
  roomCount(): number;
}

/**
 * A cluster of one process as `/goim/nodes/instances` lists it: this node,
 * its address, its figures now and the version it runs.
 *
 * @example
 * ```ts
 * import { soleNode } from "./cluster.ts";
 * const address = { host: "127.0.0.1", tcpPort: 3101, wsPort: 3102, wssPort: 0 };
 * const [node] = soleNode("n1", address, { ipCount: 1, connCount: 2 });
 * console.log(node!.connections); // 2
 * ```
 */
export function soleNode(id: string, address: NodeAddress, total: OnlineTotal): ClusterNode[] {
  return [{
    id,
    ...address,
    connections: total.connCount,
    ipCount: total.ipCount,
    updated: Date.now(),
    version: VERSION,
  }];
}
