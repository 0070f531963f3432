// A stand-in for the hub a cluster serves: it records every push it is handed (stamps
// included) instead of writing frames, and holds fake members of rooms and users, registered
// through the cluster's observer as a real hub's sessions would be.
import type { ClusterHub } from "../src/cluster/cluster.ts";
import { silentLogger } from "../src/log.ts";
import type { PushAllOptions } from "../src/server/comet.ts";
import type { CometObserver } from "../src/server/comet_observer.ts";
import type { Connection } from "../src/server/connection.ts";
import type { OnlineTotal, Push, RoomCount } from "../src/server/push.ts";
import type { StreamStamp } from "../src/server/streams.ts";

/** One stamped push as a hub got it: its stream, place and body as text. */
export interface Seen {
  stream: string;
  epoch: number;
  offset: number;
  body: string;
}

/** Keys unique across the hubs of one test process, as the registry needs. */
let _keys = 0;

/** A hub that records pushes; see the module comment. */
export class FakeHub implements ClusterHub {
  observer: CometObserver | undefined;
  readonly heartbeatTimeout = 60_000;
  readonly logger = silentLogger;
  closing = false;
  /** Every push handed to `deliver`, in order. */
  pushes: Push[] = [];
  #rooms = new Map<string, number>();
  #sessions: Connection[] = [];

  get connections(): number {
    return this.#sessions.length;
  }

  get rooms(): ReadonlyMap<string, number> {
    return this.#rooms;
  }

  /** Puts one member in `room`, registered in Redis before it resolves. */
  async join(room: string): Promise<void> {
    await this.#open(`${room}#${++_keys}`, 0, room);
  }

  /** Opens one connection of user `mid`, registered in Redis before it resolves. */
  async user(mid: number): Promise<void> {
    await this.#open(`u${mid}#${++_keys}`, mid, "");
  }

  async #open(key: string, mid: number, room: string): Promise<void> {
    await this.observer?.opening?.({ key, mid, room });
    const connection = { key, mid, room } as unknown as Connection;
    this.#sessions.push(connection);
    if (room !== "") {
      const had = this.#rooms.get(room) ?? 0;
      this.#rooms.set(room, had + 1);
      if (had === 0) this.observer?.roomOpened?.(room);
    }
    this.observer?.opened?.(connection);
  }

  /** The stamped pushes of `stream` ("room:x", "mid:n", "all") this hub got, in order. */
  seen(stream: string): Seen[] {
    const out: Seen[] = [];
    const decoder = new TextDecoder();
    for (const push of this.pushes) {
      const add = (name: string, stamp: StreamStamp | undefined) => {
        if (name !== stream || stamp === undefined) return;
        out.push({ stream, ...stamp, body: decoder.decode(push.body) });
      };
      if (push.kind === "room") add(`room:${push.room}`, push.stamp);
      else if (push.kind === "all") add("all", push.stamp);
      else if (push.kind === "mids") {
        push.mids.forEach((mid, i) => add(`mid:${mid}`, push.stamps?.[i]));
      }
    }
    return out;
  }

  deliver(push: Push): number {
    this.pushes.push(push);
    switch (push.kind) {
      case "room":
        return this.#rooms.get(push.room) ?? 0;
      case "mids":
        return this.#sessions.filter((s) => push.mids.includes(s.mid)).length;
      case "all":
        return this.#sessions.length;
      default:
        return 0;
    }
  }

  channel(_key: string): Connection | undefined {
    return undefined;
  }

  openSessions(): Iterable<Connection> {
    return this.#sessions;
  }

  pushKeys(keys: Iterable<string>, op: number, body: Uint8Array): number {
    return this.deliver({ kind: "keys", op, keys: [...keys], body });
  }

  pushMids(mids: Iterable<number>, op: number, body: Uint8Array): number {
    return this.deliver({ kind: "mids", op, mids: [...mids], body });
  }

  pushRoom(room: string, op: number, body: Uint8Array): number {
    return this.deliver({ kind: "room", op, room, body });
  }

  pushAll(op: number, body: Uint8Array, options: PushAllOptions = {}): number {
    return this.deliver({ kind: "all", op, speed: options.speed ?? 0, body });
  }

  roomOnline(room: string): number {
    return this.#rooms.get(room) ?? 0;
  }

  topRooms(_prefix: string, _limit: number): RoomCount[] {
    return [];
  }

  onlineTotal(): OnlineTotal {
    return { ipCount: 0, connCount: this.#sessions.length };
  }
}
