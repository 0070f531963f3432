// Workers of one process with fake hubs, for the bus's streams: each BusCluster is served with
// a FakeHub that does what the RULE of issue 20 asks of a hub (a room, mids or all push that
// arrives unstamped is stamped through the hub's history, the stamps written into the push; a
// stamped one is delivered as it is) and records what it got, per stream. Joined by a real
// MessagePort mesh, as the supervisor hands it out.
import assert from "node:assert/strict";
import { BusCluster } from "../src/cluster/bus_cluster.ts";
import type { PortMesh } from "../src/cluster/bus_port_mesh.ts";
import { streamOwner } from "../src/cluster/stream_owner.ts";
import type { ClusterHub } from "../src/cluster/cluster.ts";
import { silentLogger } from "../src/log.ts";
import type { CometObserver } from "../src/server/comet_observer.ts";
import type { Connection } from "../src/server/connection.ts";
import type { OnlineTotal, Push, RoomCount } from "../src/server/push.ts";
import {
  ALL_STREAM,
  type HistoryLimits,
  midStream,
  roomStream,
  type StreamHistory,
  type StreamStamp,
} from "../src/server/streams.ts";
import { until } from "./_helpers.ts";
import { joinMesh, leaveMesh } from "./_port_meshes.ts";

export const BIZ = 1000;
export const LIMITS: HistoryLimits = { size: 2_000, ttl: 60_000 };
const _ADDRESS = { host: "127.0.0.1", tcpPort: 0, wsPort: 0, wssPort: 0 };
const _decoder = new TextDecoder();

/** What a hub got in one stream: each push's stamp (undefined: none) and body as text. */
export interface Got {
  stamp: StreamStamp | undefined;
  body: string;
}

/** A hub that only stamps (the RULE) and records; it has no connections. */
export class FakeHub implements ClusterHub {
  observer: CometObserver | undefined;
  readonly heartbeatTimeout = 60_000;
  readonly logger = silentLogger;
  closing = false;
  readonly connections = 0;
  readonly rooms = new Map<string, number>();
  /** Pushes got, by stream name; key pushes under "keys". */
  readonly got = new Map<string, Got[]>();
  /** The history the cluster gave; unset: streams off (nothing is stamped). */
  history: StreamHistory | undefined;

  deliver(push: Push): number {
    const body = _decoder.decode(push.body);
    const history = this.history;
    switch (push.kind) {
      case "keys":
        this.#record("keys", undefined, body);
        break;
      case "mids":
        if (push.stamps === undefined && history !== undefined) {
          push.stamps = push.mids.map((mid) => history.append(midStream(mid), push.op, push.body));
        }
        for (const [i, mid] of push.mids.entries()) {
          this.#record(midStream(mid), push.stamps?.[i], body);
        }
        break;
      default: {
        const stream = push.kind === "room" ? roomStream(push.room) : ALL_STREAM;
        if (push.stamp === undefined && history !== undefined) {
          const stamp = history.append(stream, push.op, push.body);
          if (stamp !== undefined) push.stamp = stamp;
        }
        this.#record(stream, push.stamp, body);
      }
    }
    return 1;
  }

  /** What `stream` got so far. */
  stream(stream: string): Got[] {
    return this.got.get(stream) ?? [];
  }

  /** The last offset `stream` got; 0 when none. */
  top(stream: string): number {
    return this.stream(stream).at(-1)?.stamp?.offset ?? 0;
  }

  channel(_key: string): Connection | undefined {
    return undefined;
  }
  openSessions(): Iterable<Connection> {
    return [];
  }
  pushKeys(keys: Iterable<string>, op: number, body: Uint8Array): number {
    return this.deliver({ kind: "keys", keys: [...keys], op, body });
  }
  pushMids(mids: Iterable<number>, op: number, body: Uint8Array): number {
    return this.deliver({ kind: "mids", mids: [...mids], op, body });
  }
  pushRoom(room: string, op: number, body: Uint8Array): number {
    return this.deliver({ kind: "room", room, op, body });
  }
  pushAll(op: number, body: Uint8Array): number {
    return this.deliver({ kind: "all", speed: 0, op, body });
  }
  roomOnline(_room: string): number {
    return 0;
  }
  topRooms(_prefix: string, _limit: number): RoomCount[] {
    return [];
  }
  onlineTotal(): OnlineTotal {
    return { ipCount: 0, connCount: 0 };
  }

  #record(stream: string, stamp: StreamStamp | undefined, body: string): void {
    let list = this.got.get(stream);
    if (list === undefined) this.got.set(stream, list = []);
    list.push({ stamp, body });
  }
}

/** Options of {@linkcode FakeWorkers.start}. */
export interface FakeWorkersOptions {
  /** Ms an answer waits for another worker. */
  answerTimeout?: number;
  /** Leave streams off: no history is made. */
  off?: boolean;
}

/**
 * `n` fake-hub workers joined by a port mesh, with the worker count given (streams owned).
 * The test plays the supervisor: a worker that starts gets a port to every live one; one
 * that is killed is disconnected from the others.
 */
export class FakeWorkers implements AsyncDisposable {
  readonly clusters: BusCluster[] = [];
  readonly hubs: FakeHub[] = [];
  readonly meshes: (PortMesh | undefined)[] = [];
  readonly #n: number;
  readonly #options: FakeWorkersOptions;

  private constructor(n: number, options: FakeWorkersOptions) {
    this.#n = n;
    this.#options = options;
  }

  static async start(n: number, options: FakeWorkersOptions = {}): Promise<FakeWorkers> {
    const w = new FakeWorkers(n, options);
    for (let i = 0; i < n; i++) w.add(i);
    assert.ok(await w.settled(), "every worker hears every other");
    return w;
  }

  /** Starts worker `i` (anew once killed) and joins it to the live ones. */
  add(i: number): void {
    const mesh = this.meshes[i] = joinMesh(this.meshes, i);
    const timeout = this.#options.answerTimeout;
    const cluster = new BusCluster({
      workerId: i,
      workers: this.#n,
      transport: mesh,
      ...(timeout !== undefined && { answerTimeout: timeout }),
    });
    const hub = new FakeHub();
    if (!this.#options.off) hub.history = cluster.history(LIMITS);
    cluster.attach(hub, _ADDRESS);
    this.clusters[i] = cluster;
    this.hubs[i] = hub;
  }

  /** Worker `i` dies without a word: the others drop their ports to it, then it stops. */
  async kill(i: number): Promise<void> {
    leaveMesh(this.meshes, i);
    this.meshes[i] = undefined;
    await this.clusters[i]!.close();
  }

  /** Whether every live worker counts every other live one. */
  settled(): Promise<boolean> {
    const live = this.meshes.filter((m) => m !== undefined).length;
    return until(() =>
      this.clusters.every((c, i) =>
        this.meshes[i] === undefined || c.health().detail.workers === live
      )
    );
  }

  /** Hub `i`'s history. */
  history(i: number): StreamHistory {
    return this.hubs[i]!.history!;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const c of this.clusters) await c.close();
  }
}

/** The first `n` whose stream (`make(n)`) is owned by worker `owner` of `workers`. */
export function ownedBy(owner: number, workers: number, make: (n: number) => string): number {
  for (let n = 1;; n++) if (streamOwner(make(n), workers) === owner) return n;
}
