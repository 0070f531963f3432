/**
 * Routing of a {@linkcode RedisCluster}'s pushes to the other nodes: which
 * nodes the registry says hold the targets, and one envelope published to
 * each.
 *
 * @module
 */
import type { ClusterPushResult } from "./cluster.ts";
import { encodeEnvelope, type Envelope } from "./envelope.ts";
import type { OtherNodes } from "./other_nodes.ts";
import { RedisConnectionError } from "./redis_client.ts";
import type { RedisLink } from "./redis_link.ts";
import { RedisError, type RedisReply } from "./resp.ts";
import { strings, text } from "./_util.ts";

/**
 * Groups keys by the node holding them, as `MGET` of their registry entries
 * answered (one owner or nil per key, in order); this node and unknown keys
 * are left out.
 *
 * @example
 * ```ts
 * import { keysByNode } from "./push_router.ts";
 * const n2 = new TextEncoder().encode("n2");
 * console.log(keysByNode(["a", "b", "c"], [n2, null, n2], "n1")); // Map { "n2" => ["a", "c"] }
 * ```
 */
export function keysByNode(
  keys: readonly string[],
  owners: RedisReply,
  self: string,
): Map<string, string[]> {
  const byNode = new Map<string, string[]>();
  if (!Array.isArray(owners)) return byNode;
  for (let i = 0; i < owners.length; i++) {
    const owner = owners[i];
    if (!(owner instanceof Uint8Array)) continue;
    const node = text.decode(owner);
    if (node === self) continue;
    const list = byNode.get(node);
    if (list === undefined) byNode.set(node, [keys[i]!]);
    else list.push(keys[i]!);
  }
  return byNode;
}

/**
 * Groups users by the nodes holding their devices, as `HGETALL` of their
 * registry hashes answered (key, node, key, node... per user, in order);
 * a user is named once per node, and this node is left out.
 *
 * @example
 * ```ts
 * import { midsByNode } from "./push_router.ts";
 * const [k, n2] = ["k1", "n2"].map((s) => new TextEncoder().encode(s));
 * console.log(midsByNode([7], [[k!, n2!, k!, n2!]], "n1")); // Map { "n2" => [7] }
 * ```
 */
export function midsByNode(
  mids: readonly number[],
  devices: readonly RedisReply[],
  self: string,
): Map<string, number[]> {
  const byNode = new Map<string, number[]>();
  for (let i = 0; i < mids.length; i++) {
    const fields = devices[i];
    if (!Array.isArray(fields)) continue;
    // HGETALL answers key, node, key, node...; a user's devices may share a node.
    for (let f = 1; f < fields.length; f += 2) {
      const owner = fields[f];
      if (!(owner instanceof Uint8Array)) continue;
      const node = text.decode(owner);
      if (node === self) continue;
      const list = byNode.get(node);
      if (list === undefined) byNode.set(node, [mids[i]!]);
      else if (list[list.length - 1] !== mids[i]) list.push(mids[i]!);
    }
  }
  return byNode;
}

/**
 * Hands pushes this node already delivered locally to the other nodes
 * holding targets. Each method takes the local count and answers the
 * cluster's result: degraded, with no remote nodes, when Redis cannot be
 * reached or refuses.
 *
 * @example
 * ```ts ignore
 * import { PushRouter } from "./push_router.ts";
 * declare const link: import("./redis_link.ts").RedisLink;
 * declare const others: import("./other_nodes.ts").OtherNodes;
 * const router = new PushRouter(link, others);
 * const result = await router.pushRoom(0, "live://1", 1000, new Uint8Array());
 * ```
 */
export class PushRouter {
  #link: RedisLink;
  #others: OtherNodes;

  /**
   * @param link Commands, key names, node id, counters and logger.
   * @param others The other nodes' last reports: who is alive.
   */
  constructor(link: RedisLink, others: OtherNodes) {
    this.#link = link;
    this.#others = others;
  }

  /** Publishes to the nodes the registry says hold these keys. */
  async pushKeys(
    local: number,
    keys: readonly string[],
    op: number,
    body: Uint8Array,
  ): Promise<ClusterPushResult> {
    if (keys.length === 0 || !this.#link.routing) return this.#localOnly(local);
    const { client, keys: names, nodeId } = this.#link;
    try {
      const owners = await client.command("MGET", ...keys.map((k) => names.key(k)));
      let remote = 0;
      await Promise.all(
        [...keysByNode(keys, owners, nodeId)].map(async ([node, targets]) => {
          const envelope = { kind: "keys", from: nodeId, op, keys: targets, body } as const;
          if (await this.#publish(node, encodeEnvelope(envelope))) remote++;
        }),
      );
      return { local, remote, degraded: false };
    } catch (err) {
      return this.#failed(err, local);
    }
  }

  /** Publishes to the nodes the registry says hold these users' devices. */
  async pushMids(
    local: number,
    mids: readonly number[],
    op: number,
    body: Uint8Array,
  ): Promise<ClusterPushResult> {
    if (mids.length === 0 || !this.#link.routing) return this.#localOnly(local);
    const { client, keys, nodeId } = this.#link;
    try {
      // One round trip: the client pipelines commands issued in the same tick.
      const devices = await Promise.all(
        mids.map((mid) => client.command("HGETALL", keys.mid(mid))),
      );
      let remote = 0;
      await Promise.all(
        [...midsByNode(mids, devices, nodeId)].map(async ([node, targets]) => {
          const envelope = { kind: "mids", from: nodeId, op, mids: targets, body } as const;
          if (await this.#publish(node, encodeEnvelope(envelope))) remote++;
        }),
      );
      return { local, remote, degraded: false };
    } catch (err) {
      return this.#failed(err, local);
    }
  }

  /** Publishes to every other node with members of `room`. */
  async pushRoom(
    local: number,
    room: string,
    op: number,
    body: Uint8Array,
  ): Promise<ClusterPushResult> {
    const link = this.#link;
    if (!link.routing) return this.#localOnly(local);
    const { client, keys, nodeId } = link;
    try {
      const nodes = strings(await client.command("SMEMBERS", keys.room(room)));
      let remote = 0;
      let bytes: Uint8Array | undefined;
      await Promise.all(nodes.map(async (node) => {
        if (node === nodeId) return;
        bytes ??= encodeEnvelope({ kind: "room", from: nodeId, op, room, body });
        if (await this.#publish(node, bytes)) remote++;
        // Nobody listens and it does not report: a dead node this one never saw the
        // report of, so the cleanup at its expiry could not name this room.
        else if (!this.#others.live().has(node)) link.fire(["SREM", keys.room(room), node]);
      }));
      return { local, remote, degraded: false };
    } catch (err) {
      return this.#failed(err, local);
    }
  }

  /** Publishes once for every other node; `speed` is each node's share. */
  async pushAll(
    local: number,
    op: number,
    body: Uint8Array,
    speed: number,
  ): Promise<ClusterPushResult> {
    const link = this.#link;
    if (!link.routing) return this.#localOnly(local);
    try {
      const envelope: Envelope = { kind: "all", from: link.nodeId, op, speed, body };
      const receivers = await link.client.publish(link.keys.all, encodeEnvelope(envelope));
      link.stats.sent++;
      // This node's own subscriber hears it too (and skips it).
      return { local, remote: Math.max(0, receivers - 1), degraded: false };
    } catch (err) {
      return this.#failed(err, local);
    }
  }

  /** The result of a push that stays on this node: degraded unless it had nowhere else to go. */
  #localOnly(local: number): ClusterPushResult {
    return { local, remote: 0, degraded: this.#link.routing ? false : true };
  }

  /** Publishes to one node; whether a subscriber (the node) heard it. */
  async #publish(node: string, bytes: Uint8Array): Promise<boolean> {
    const receivers = await this.#link.client.publish(this.#link.keys.node(node), bytes);
    this.#link.stats.sent++;
    return receivers > 0;
  }

  #failed(err: unknown, local: number): ClusterPushResult {
    if (!(err instanceof RedisConnectionError) && !(err instanceof RedisError)) throw err;
    this.#link.failed(err);
    return { local, remote: 0, degraded: true };
  }
}
