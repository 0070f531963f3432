// The worker bus under test: hubs in one isolate, each served with its own BusCluster, joined
// either on one channel name (BroadcastChannel instances of one isolate hear each other as
// Workers do) or by a port mesh (a MessageChannel per pair, as the supervisor hands out), with
// real clients over TCP and WebSocket and the push API of each.
import assert from "node:assert/strict";
import { BusCluster } from "../src/cluster/bus_cluster.ts";
import type { Outgoing } from "../src/cluster/bus_gather.ts";
import type { PortMesh } from "../src/cluster/bus_port_mesh.ts";
import { Op } from "../src/protocol/op.ts";
import type { CometServer, ServeOptions } from "../src/serve.ts";
import { api, startServer, TestClient, text, until } from "./_helpers.ts";
import { joinMesh, leaveMesh } from "./_port_meshes.ts";
import { type Served, type TransportClient, TRANSPORTS } from "./_transports.ts";

/** The business op the tests push. */
export const BIZ = 1000;
const WS = TRANSPORTS.find((t) => t.name === "ws")!;
let _channels = 0;

/** A fresh channel name: tests never hear each other's buses. */
export function channelName(): string {
  return `comet-bus-test-${Deno.pid}-${++_channels}`;
}

/**
 * How the test's hubs are joined: "owned" is a port mesh whose clusters know the worker
 * count, as the command's workers do (streams, once on, are ordered by their owner).
 */
export type Bus = "channel" | "ports" | "owned";

/**
 * `n` servers joined by one bus, each with a second (WebSocket) listener for test clients.
 * Over ports, the test plays the supervisor: a hub that joins gets a port to every live
 * one, and one that dies is disconnected from the others.
 */
export class Workers implements AsyncDisposable {
  readonly servers: CometServer[] = [];
  readonly ws: Served[] = [];
  readonly meshes: PortMesh[] = [];
  readonly channel = channelName();
  readonly #clients: (TestClient | TransportClient)[] = [];
  readonly #options: ServeOptions;
  readonly bus: Bus;
  readonly #count: number;

  private constructor(bus: Bus, options: ServeOptions, count: number) {
    this.bus = bus;
    this.#options = options;
    this.#count = count;
  }

  static async start(
    n: number,
    options: ServeOptions = {},
    bus: Bus = "channel",
  ): Promise<Workers> {
    const w = new Workers(bus, options, n);
    for (let i = 0; i < n; i++) await w.add(i);
    assert.ok(await until(() => w.servers.every((s) => s.cluster.health().detail.workers === n)));
    return w;
  }

  /** Starts hub `i` (anew, once {@linkcode Workers.kill}ed) and joins it to the live ones. */
  async add(i: number): Promise<void> {
    let transport: { channel: string } | { transport: PortMesh; workers?: number } = {
      channel: this.channel,
    };
    if (this.bus !== "channel") {
      const mesh = this.meshes[i] = joinMesh(this.meshes, i);
      transport = { transport: mesh, ...(this.bus === "owned" && { workers: this.#count }) };
    }
    const cluster = new BusCluster({ workerId: i, ...transport });
    const server = startServer({ cluster, closeGrace: 200, ...this.#options });
    this.servers[i] = server;
    this.ws[i] = await WS.serve(server.comet);
  }

  /** Hub `i` dies without a word: the others drop their ports to it, then it stops. */
  async kill(i: number): Promise<void> {
    leaveMesh(this.meshes, i);
    delete this.meshes[i];
    await this.servers[i]![Symbol.asyncDispose]();
    await this.ws[i]!.close();
  }

  cluster(i: number): BusCluster {
    return this.servers[i]!.cluster as BusCluster;
  }

  async tcp(i: number, auth: Record<string, unknown>): Promise<TestClient> {
    const c = await TestClient.auth(this.servers[i]!.addrs.tcp!.port, auth);
    this.#clients.push(c);
    return c;
  }

  async websocket(i: number, auth: Record<string, unknown>): Promise<TransportClient> {
    const c = await this.ws[i]!.connect();
    this.#clients.push(c);
    const seq = await c.send(Op.Auth, JSON.stringify(auth));
    const reply = await c.next();
    assert.deepEqual([reply.op, reply.seq], [Op.AuthReply, seq]);
    return c;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const c of this.#clients) await c.close();
    for (const s of this.servers) await s[Symbol.asyncDispose]();
    for (const s of this.ws) await s.close();
  }
}

/** The next business message's body, skipping whatever else arrives. */
export async function nextBiz(c: TestClient | TransportClient): Promise<string> {
  for (;;) {
    const f = await c.next();
    if (f.op === BIZ) return text(f.body);
  }
}

export async function heartbeatOnline(c: TestClient): Promise<number> {
  const seq = c.sendFrame(Op.Heartbeat);
  const f = await c.nextOp(Op.HeartbeatReply);
  assert.equal(f.seq, seq);
  return new DataView(f.body.buffer, f.body.byteOffset).getInt32(0);
}

/** The `data` of a GET on worker `i`'s API. */
export async function get(w: Workers, i: number, path: string): Promise<unknown> {
  const res = await api(w.servers[i]!, path);
  assert.equal(res.body.code, 0, path);
  return res.body.data;
}

/** A peer that speaks the bus by hand: it says what a test tells it to, and answers nothing. */
export class RawPeer implements Disposable {
  readonly channel: BroadcastChannel;
  constructor(name: string, readonly w: number, readonly i: string = crypto.randomUUID()) {
    this.channel = new BroadcastChannel(name);
  }
  seq = 0;
  post(message: Outgoing): void {
    this.channel.postMessage({ ...message, w: this.w, i: this.i, s: ++this.seq });
  }
  [Symbol.dispose](): void {
    this.channel.close();
  }
}
