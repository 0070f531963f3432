// deno-lint-ignore no-unused-vars
import type { Comet, PushAllOptions } from "../server/comet.ts";
import type { OnlineTotal, Push, RoomCount } from "../server/push.ts";
import type {
  Cluster,
  ClusterHealth,
  ClusterHub,
  ClusterNode,
  ClusterPushResult,
  ClusterState,
  NodeAddress,
} from "./cluster.ts";
import { soleNode } from "./cluster.ts";

/**
 * Options for {@linkcode MemoryCluster}.
 *
 * @example
 * ```ts
 * import { MemoryCluster, type MemoryClusterOptions } from "./memory_cluster.ts";
 *
 * const options: MemoryClusterOptions = { nodeId: "edge-1" };
 * await using cluster = new MemoryCluster(options);
 * ```
 */
export interface MemoryClusterOptions {
  /** The node's id in `/goim/nodes/instances`. Default `"local"`. */
  nodeId?: string;
}

const _HEALTHY: ClusterHealth = Object.freeze({ ok: true, detail: Object.freeze({}) });

/**
 * A cluster of one: every call goes straight to the local hub, so a server
 * behaves exactly as it does without a cluster. The default of
 * {@linkcode serve}; nothing to run.
 *
 * @example
 * ```ts
 * import { Comet } from "../server/comet.ts";
 * import { MemoryCluster } from "./memory_cluster.ts";
 *
 * await using comet = new Comet();
 * await using cluster = new MemoryCluster({ nodeId: "solo" });
 * cluster.attach(comet, { host: "127.0.0.1", tcpPort: 3101, wsPort: 3102, wssPort: 0 });
 * console.log(cluster.nodes().map((n) => n.id)); // ["solo"]
 * ```
 */
export class MemoryCluster implements Cluster {
  /** This node's id. */
  readonly nodeId: string;
  #comet: ClusterHub | undefined;
  #address: NodeAddress | undefined;
  #closed = false;

  /**
   * Creates the cluster; {@linkcode MemoryCluster.attach} binds it to a hub.
   *
   * @throws {TypeError} When `nodeId` is empty.
   */
  constructor(options: MemoryClusterOptions = {}) {
    const id = options.nodeId ?? "local";
    if (typeof id !== "string" || id === "") throw new TypeError("Node id must not be empty");
    this.nodeId = id;
  }

  /** `ready` until closed: there is no broker to lose. */
  get state(): ClusterState {
    return this.#closed ? "closed" : "ready";
  }

  /**
   * Binds the hub whose connections pushes go to.
   *
   * @throws {TypeError} When already attached or closed.
   */
  attach(comet: ClusterHub, address: NodeAddress): void {
    if (this.#closed) throw new TypeError("Cluster is closed");
    if (this.#comet !== undefined) throw new TypeError("Cluster is already attached to a hub");
    this.#comet = comet;
    this.#address = { ...address };
  }

  /** As {@linkcode Comet.pushKeys}. */
  pushKeys(keys: readonly string[], op: number, body: Uint8Array): Promise<ClusterPushResult> {
    return this.#push({ kind: "keys", op, keys, body });
  }

  /** As {@linkcode Comet.pushMids}. */
  pushMids(mids: readonly number[], op: number, body: Uint8Array): Promise<ClusterPushResult> {
    return this.#push({ kind: "mids", op, mids, body });
  }

  /** As {@linkcode Comet.pushRoom}. */
  pushRoom(room: string, op: number, body: Uint8Array): Promise<ClusterPushResult> {
    return this.#push({ kind: "room", op, room, body });
  }

  /**
   * As {@linkcode Comet.pushAll}.
   *
   * @throws {RangeError} When `speed` is negative.
   */
  pushAll(op: number, body: Uint8Array, options?: PushAllOptions): Promise<ClusterPushResult> {
    return this.#push({ kind: "all", op, speed: options?.speed ?? 0, body });
  }

  /** As {@linkcode Comet.roomOnline}. */
  roomOnline(room: string): number {
    return this.#hub().roomOnline(room);
  }

  /** As {@linkcode Comet.topRooms}. */
  topRooms(prefix: string, limit: number): RoomCount[] {
    return this.#hub().topRooms(prefix, limit);
  }

  /** As {@linkcode Comet.onlineTotal}. */
  onlineTotal(): OnlineTotal {
    return this.#hub().onlineTotal();
  }

  /** This node alone, with its current figures. */
  nodes(): ClusterNode[] {
    return soleNode(this.nodeId, this.#address!, this.#hub().onlineTotal());
  }

  /** Always healthy, with nothing to add to `/healthz`. */
  health(): ClusterHealth {
    return _HEALTHY;
  }

  /** Marks the cluster closed; the hub is the server's to close. Idempotent. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  /** Same as {@linkcode MemoryCluster.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Delivers a push locally; what it throws rejects, as from any cluster. */
  #push(push: Push): Promise<ClusterPushResult> {
    try {
      return Promise.resolve({ local: this.#hub().deliver(push), remote: 0, degraded: false });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #hub(): ClusterHub {
    if (this.#comet === undefined) throw new TypeError("Cluster is not attached to a hub yet");
    return this.#comet;
  }
}
