// A scripted Wire and ChannelHooks for tests of channels and rooms.
import assert from "node:assert/strict";
import { FrameDecoder } from "../src/protocol/decoder.ts";
import type { Frame } from "../src/protocol/frame.ts";
import type { Channel, ChannelHooks } from "../src/server/channel.ts";
import type { ConnInfo, Wire } from "../src/server/wire.ts";

/** A Wire that records every encode/write/close; writes can be held open. */
export class FakeWire implements Wire {
  readonly info: ConnInfo = { transport: "fake", remoteAddr: { hostname: "127.0.0.1", port: 1 } };
  writes: Uint8Array[] = [];
  encodes: { count: number; bytes: number }[] = [];
  closes = 0;
  /** Wires given the same object may be handed each other's encodings of room runs. */
  sharedEncoding: object | undefined;
  /** When set, `write` waits for this before resolving. */
  gate: Promise<void> | undefined;
  /** When set, `write` rejects with it. */
  failWith: Error | undefined;

  /** When set, `read` hands these out, then waits until the wire is closed. */
  inbound: Frame[] | undefined;
  #closed: (() => void) | undefined;

  read(): Promise<Frame | null> {
    const next = this.inbound?.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.inbound === undefined || this.closes > 0) return Promise.resolve(null);
    return new Promise((resolve) => (this.#closed = () => resolve(null)));
  }

  encode(chunks: readonly Uint8Array[], count: number, bytes: number): Uint8Array {
    assert.ok(count <= chunks.length, "count within the chunks array");
    const out = new Uint8Array(bytes);
    let at = 0;
    for (let i = 0; i < count; i++) {
      out.set(chunks[i]!, at);
      at += chunks[i]!.length;
    }
    assert.equal(at, bytes, "bytes is the total of the chunks");
    this.encodes.push({ count, bytes });
    return out;
  }

  async write(data: Uint8Array): Promise<void> {
    this.writes.push(data);
    if (this.gate) await this.gate;
    if (this.failWith) throw this.failWith;
  }

  close(): void {
    this.closes++;
    this.#closed?.();
  }

  /** Every frame written so far, decoded, per write call. */
  framesPerWrite(): Frame[][] {
    return this.writes.map((w) => [...new FrameDecoder({ maxBody: 1 << 16 }).decode(w)]);
  }
}

/** ChannelHooks that record what they are told. */
export class FakeHooks implements ChannelHooks<Channel> {
  dropCount = 0;
  slowCount = 0;
  closingCalls: { channel: Channel; grace: number; queued: number }[] = [];
  dropped(_channel: Channel, count: number): void {
    this.dropCount += count;
  }
  slow(channel: Channel): void {
    this.slowCount++;
    // The hook sees the channel before it starts closing.
    assert.equal(channel.state === "closing", false, "slow() runs before close()");
  }
  closing(channel: Channel, grace: number): void {
    this.closingCalls.push({ channel, grace, queued: channel.queued });
  }
}
