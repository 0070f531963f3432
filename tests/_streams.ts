// Shared by the stream tests: a raw client that opts in, op-18 decoding, a history that answers later.
import { encodeFrame, type Frame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { decodeStreamPush, type StreamPush } from "../src/protocol/stream_push.ts";
import type {
  StreamAnswer,
  StreamHistory,
  StreamQuery,
  StreamStamp,
} from "../src/server/streams.ts";
import { TestClient, text, utf8 } from "./_helpers.ts";

/** One stream in op 8's JSON. */
export interface StreamPosition {
  id?: string;
  epoch: number;
  offset: number;
  recovered?: boolean;
  reason?: string;
}

/** Op 8's JSON for an opted-in client. */
export interface Streams {
  streams: { room?: StreamPosition; mid?: StreamPosition; all?: StreamPosition };
}

/** Connects, sends `auth` (goim JSON, with `recover` to opt in) and returns the client and op 8. */
export async function authWith(
  port: number,
  auth: Record<string, unknown>,
): Promise<{ client: TestClient; reply: Frame }> {
  const client = await TestClient.connect(port);
  const seq = client.sendFrame(Op.Auth, utf8.encode(JSON.stringify(auth)));
  const reply = await client.next();
  if (reply.op !== Op.AuthReply || reply.seq !== seq) {
    await client.close();
    throw new Error(
      `Expected auth reply, got op ${reply.op} seq ${reply.seq}: ${text(reply.body)}`,
    );
  }
  return { client, reply };
}

/** Like {@linkcode authWith}, with op 8's body read as JSON. */
export async function optIn(
  port: number,
  auth: Record<string, unknown>,
): Promise<{ client: TestClient; streams: Streams["streams"] }> {
  const { client, reply } = await authWith(port, auth);
  return { client, streams: (JSON.parse(text(reply.body)) as Streams).streams };
}

/** The op-18 frame's fields, the pushed body as text; throws on another op. */
export function streamPush(frame: Frame): Omit<StreamPush, "body"> & { body: string } {
  if (frame.op !== Op.StreamPush) {
    throw new Error(`Expected op 18, got op ${frame.op}: ${text(frame.body)}`);
  }
  const push = decodeStreamPush(frame.body);
  return { ...push, body: text(push.body) };
}

/** The bytes of the frame a goim client is sent for a push of `op` with `body`. */
export function plainBytes(op: number, body: string): Uint8Array {
  return encodeFrame(op, 0, utf8.encode(body));
}

/** The bytes of a decoded frame, encoded anew: what was on the wire. */
export function frameBytes(frame: Frame): Uint8Array {
  return encodeFrame(frame.op, frame.seq, frame.body, frame.ver);
}

/** A position to name in `recover`. */
export function at(position: StreamPosition): StreamStamp {
  return { epoch: position.epoch, offset: position.offset };
}

/**
 * A history that answers later, when the test says: each `answer` waits
 * until {@linkcode LateHistory.release}. `snapshot` says when the inner
 * history is asked: at the call (the answer is old by the time it comes) or
 * at the release (pushes meanwhile are in it, as with Redis).
 */
export class LateHistory implements StreamHistory {
  readonly inner: StreamHistory;
  readonly snapshot: "call" | "release";
  #waiting: {
    queries: readonly StreamQuery[];
    taken?: StreamAnswer[];
    settle(fail?: Error): void;
  }[] = [];

  constructor(inner: StreamHistory, snapshot: "call" | "release") {
    this.inner = inner;
    this.snapshot = snapshot;
  }

  append(stream: string, op: number, body: Uint8Array): StreamStamp | undefined {
    return this.inner.append(stream, op, body);
  }

  answer(queries: readonly StreamQuery[]): Promise<StreamAnswer[]> {
    return new Promise((resolve, reject) => {
      const taken = this.snapshot === "call"
        ? this.inner.answer(queries) as StreamAnswer[]
        : undefined;
      this.#waiting.push({
        queries,
        ...(taken !== undefined && { taken }),
        settle: (fail) => {
          if (fail !== undefined) return reject(fail);
          resolve(taken ?? this.inner.answer(queries) as StreamAnswer[]);
        },
      });
    });
  }

  /** Answers waiting. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Settles the oldest answer waiting: with the history's answer, or failing with `fail`. */
  release(fail?: Error): void {
    const next = this.#waiting.shift();
    if (next === undefined) throw new Error("No answer is waiting");
    next.settle(fail);
  }
}
