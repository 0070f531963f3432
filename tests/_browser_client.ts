// Deno's built-in WebSocket client as a browser uses it, for tests of SocketWire, the edge
// entry and mixed rooms: every message it gets lands in an inbox to take, with a timeout.
import assert from "node:assert/strict";
import { encodeFrame, type Frame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";
import { goimFrame } from "./_ws_client.ts";

const utf8 = new TextEncoder();

/** A queue that hands items to waiters, with a timeout. */
export class Inbox<T> {
  #items: T[] = [];
  #waiters: (() => void)[] = [];
  ended = false;

  put(item: T): void {
    this.#items.push(item);
    this.#wake();
  }

  end(): void {
    this.ended = true;
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async take(timeout = 3000): Promise<T> {
    const deadline = Date.now() + timeout;
    while (this.#items.length === 0) {
      if (this.ended) throw new Error("Connection closed");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("Timed out waiting for a message");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, left);
        this.#waiters.push(resolve);
      });
      clearTimeout(timer);
    }
    return this.#items.shift()!;
  }

  /** Resolves true if nothing arrives within `ms`. */
  async silent(ms = 200): Promise<boolean> {
    try {
      await this.take(ms);
      return false;
    } catch (err) {
      return (err as Error).message.startsWith("Timed out");
    }
  }
}

/** Deno's built-in WebSocket client, as a browser would use it. */
export class BrowserClient implements AsyncDisposable {
  readonly ws: WebSocket;
  readonly inbox: Inbox<Uint8Array> = new Inbox();
  readonly closed: Promise<CloseEvent>;
  seq = 0;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      this.inbox.put(
        typeof e.data === "string" ? utf8.encode(e.data) : new Uint8Array(e.data as ArrayBuffer),
      );
    };
    this.closed = new Promise((resolve) => {
      ws.onclose = (e) => {
        this.inbox.end();
        resolve(e);
      };
    });
  }

  static async open(url: string, protocols?: string[]): Promise<BrowserClient> {
    const ws = new WebSocket(url, protocols);
    const client = new BrowserClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`WebSocket to ${url} failed to open`));
    });
    return client;
  }

  /** Opens and authenticates with goim's JSON; resolves after op 8. */
  static async auth(
    url: string,
    auth: Record<string, unknown>,
    protocols?: string[],
  ): Promise<BrowserClient> {
    const c = await BrowserClient.open(url, protocols);
    const seq = c.send(Op.Auth, JSON.stringify(auth));
    const reply = await c.frame();
    assert.equal(reply.op, Op.AuthReply);
    assert.equal(reply.seq, seq);
    return c;
  }

  /** Sends one goim frame as one binary message; returns its seq. */
  send(op: number, body: Uint8Array | string = "", seq = ++this.seq): number {
    this.ws.send(encodeFrame(op, seq, typeof body === "string" ? utf8.encode(body) : body));
    return seq;
  }

  /** The next message, which must be exactly one goim frame. */
  async frame(timeout?: number): Promise<Frame> {
    return goimFrame(await this.inbox.take(timeout));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close();
    await this.closed;
  }
}
