// A raw goim TCP client that speaks docs/protocol.md section 8 on its own,
// for the recovery soak: it keeps a position per stream, resumes with
// `recover`, and counts every gap, duplicate, epoch break and refusal it
// sees. It uses only the protocol codec, not the client SDK, so that what it
// checks is the server.
import { FrameDecoder } from "../src/protocol/decoder.ts";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { decodeStreamPush } from "../src/protocol/stream_push.ts";

/** A stream as a connection reads it. */
export type StreamSlot = "room" | "mid" | "all";

const _SLOTS: readonly StreamSlot[] = ["room", "mid", "all"];
const _KIND_SLOT: Record<number, StreamSlot> = { 1: "room", 2: "mid", 3: "all" };

/** Where a client stands in one stream. */
export interface Position {
  epoch: number;
  offset: number;
}

/** What a client counted over its life. */
export interface ClientTally {
  /** Op-18 frames taken in order. */
  received: number;
  /** Plain pushes (op 1000), outside every stream: pushes a degraded cluster took. */
  plain: number;
  /** Op-18 frames at or below the position held: delivered twice. */
  duplicates: number;
  /** Offsets skipped between two op-18 frames of one epoch: lost. */
  gaps: number;
  /** Op-18 frames of another epoch than the one held, outside an op 8. */
  epochBreaks: number;
  /** Bodies that do not name their stream and offset (when `checkBodies`). */
  misplaced: number;
  /** Streams op 8 recovered. */
  recovered: number;
  /** Streams op 8 recovered with pushes to replay, by stream kind. */
  replays: Record<StreamSlot, number>;
  /** Streams op 8 refused, by reason. */
  refused: Record<string, number>;
  /** Pushes the refusals skipped (same epoch, from the held offset to op 8's). */
  skippedByRefusal: number;
  /** Connections made. */
  connects: number;
  /** Connections that failed before op 8. */
  failedConnects: number;
}

/** A tally with every count at zero: a client's at its start, or a sum's. */
export function emptyTally(): ClientTally {
  return {
    received: 0,
    plain: 0,
    duplicates: 0,
    gaps: 0,
    epochBreaks: 0,
    misplaced: 0,
    recovered: 0,
    replays: { room: 0, mid: 0, all: 0 },
    refused: {},
    skippedByRefusal: 0,
    connects: 0,
    failedConnects: 0,
  };
}

/** Options of {@linkcode StreamClient}. */
export interface StreamClientOptions {
  mid: number;
  key: string;
  room: string;
  /** Check that each body reads `<stream>#<offset>` (one publisher per stream, fresh streams). */
  checkBodies: boolean;
  /** Keep every body taken, in order, in {@linkcode StreamClient.bodies}. */
  keepBodies?: boolean;
}

const _enc = new TextEncoder();
const _dec = new TextDecoder();

/** One opted-in client, connected or away. */
export class StreamClient {
  readonly options: StreamClientOptions;
  readonly tally: ClientTally = emptyTally();
  readonly positions = new Map<StreamSlot, Position>();
  /** FNV-1a over every (offset, body) taken, in order: equal digests, equal sequences. */
  digest = 0x811c9dc5;
  /** The bodies taken, in order, when `keepBodies` is set. */
  readonly bodies: string[] = [];
  #conn: Deno.TcpConn | undefined;
  #reading: Promise<void> | undefined;
  #steps: Promise<void> = Promise.resolve();

  constructor(options: StreamClientOptions) {
    this.options = options;
  }

  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /**
   * Connects, authenticates with the positions held, and reads until cut.
   * Resolves after op 8. A connection still open is cut first: one client,
   * one connection, even when two callers (a cutter and a node's kill)
   * reconnect it at once.
   */
  connect(port: number): Promise<void> {
    return this.#serial(() => this.#connect(port));
  }

  /** Drops the connection at once, as a train tunnel would. */
  cut(): Promise<void> {
    return this.#serial(() => this.#cut());
  }

  /**
   * Runs `step` after every connect and cut asked before it: two connects
   * interleaved would leave the first one reading, and its pushes would
   * count as duplicates of the second's.
   */
  #serial(step: () => Promise<void>): Promise<void> {
    const run = this.#steps.then(step);
    this.#steps = run.catch(() => {});
    return run;
  }

  async #connect(port: number): Promise<void> {
    await this.#cut();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    this.tally.connects++;
    const { mid, key, room } = this.options;
    const recover: Record<string, unknown> = {};
    for (const slot of _SLOTS) {
      const p = this.positions.get(slot);
      if (p === undefined) continue;
      recover[slot] = slot === "room" ? { id: room, ...p } : { ...p };
    }
    const auth = { mid, key, room_id: room, accepts: [1000], recover };
    await conn.write(encodeFrame(Op.Auth, 1, _enc.encode(JSON.stringify(auth))));
    const decoder = new FrameDecoder({ maxBody: 1 << 20 });
    const buf = new Uint8Array(64 * 1024);
    let authed!: () => void;
    let failed!: (err: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      authed = resolve;
      failed = reject;
    });
    let gotReply = false;
    this.#conn = conn;
    this.#reading = (async () => {
      try {
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          decoder.push(buf.subarray(0, n));
          for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
            if (f.op === Op.AuthReply) {
              this.#answer(_dec.decode(f.body));
              gotReply = true;
              authed();
            } else if (f.op === Op.StreamPush) {
              this.#push(f.body);
            } else if (f.op === 1000) {
              this.tally.plain++;
            } else if (f.op === Op.DisconnectReply && !gotReply) {
              failed(new Error(`Refused: ${_dec.decode(f.body)}`));
            }
          }
        }
      } catch {
        // Cut by us or by the server.
      } finally {
        if (this.#conn === conn) this.#conn = undefined;
        if (!gotReply) failed(new Error("Closed before op 8"));
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }
    })();
    try {
      await ready;
    } catch (err) {
      this.tally.failedConnects++;
      throw err;
    }
  }

  async #cut(): Promise<void> {
    const conn = this.#conn;
    this.#conn = undefined;
    try {
      conn?.close();
    } catch {
      // Closed already.
    }
    await this.#reading;
  }

  #answer(text: string): void {
    const streams = (JSON.parse(text) as { streams: Record<string, Record<string, unknown>> })
      .streams;
    for (const slot of _SLOTS) {
      const s = streams[slot];
      if (s === undefined) continue;
      const epoch = s.epoch as number;
      const offset = s.offset as number;
      const held = this.positions.get(slot);
      if (s.recovered === true) {
        this.tally.recovered++;
        if (held !== undefined && offset > held.offset) this.tally.replays[slot]++;
        // The replay that follows moves the position; op 8's offset is where it ends.
        continue;
      }
      if (s.recovered === false) {
        const reason = String(s.reason);
        this.tally.refused[reason] = (this.tally.refused[reason] ?? 0) + 1;
        if (held !== undefined && held.epoch === epoch && offset > held.offset) {
          this.tally.skippedByRefusal += offset - held.offset;
        }
      }
      this.positions.set(slot, { epoch, offset });
    }
  }

  #push(body: Uint8Array): void {
    const p = decodeStreamPush(body);
    const slot = _KIND_SLOT[p.kind]!;
    const held = this.positions.get(slot);
    const t = this.tally;
    if (held !== undefined && held.epoch === p.epoch) {
      if (p.offset <= held.offset) {
        t.duplicates++;
        return;
      }
      if (p.offset > held.offset + 1) t.gaps += p.offset - held.offset - 1;
    } else if (held !== undefined) {
      t.epochBreaks++;
    }
    t.received++;
    this.positions.set(slot, { epoch: p.epoch, offset: p.offset });
    let h = Math.imul(this.digest ^ p.offset, 0x01000193);
    for (const byte of p.body) h = Math.imul(h ^ byte, 0x01000193);
    this.digest = h >>> 0;
    if (this.options.keepBodies) this.bodies.push(_dec.decode(p.body));
    if (!this.options.checkBodies) return;
    const text = _dec.decode(p.body);
    const name = slot === "room"
      ? `room:${this.options.room}`
      : slot === "mid"
      ? `mid:${this.options.mid}`
      : "all";
    if (text !== `${name}#${p.offset}`) t.misplaced++;
  }
}
