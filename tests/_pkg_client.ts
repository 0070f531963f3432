// A raw gf gtcp "pkg" client for tests, with its own length-prefix codec written apart from
// src/transport/pkg.ts so that it checks the server rather than agreeing with it.
import assert from "node:assert/strict";
import type { Comet } from "../src/server/comet.ts";
import { concat } from "./_bytes.ts";
import { StreamClient, text, until, utf8 } from "./_helpers.ts";

/** A big-endian length prefix of `headerSize` bytes. */
export function header(headerSize: number, length: number): Uint8Array {
  const h = new Uint8Array(headerSize);
  for (let i = headerSize - 1; i >= 0; i--, length = Math.floor(length / 256)) h[i] = length % 256;
  return h;
}

/** One package: the length prefix, then `payload`. */
export function pkg(headerSize: number, payload: Uint8Array | string): Uint8Array {
  const p = typeof payload === "string" ? utf8.encode(payload) : payload;
  return concat([header(headerSize, p.length), p]);
}

/** A raw pkg client over TCP: sends packages, hands out the payloads it receives. */
export class PkgClient extends StreamClient<Uint8Array, Deno.TcpConn> {
  readonly headerSize: number;
  #buf: Uint8Array = new Uint8Array(0);

  constructor(conn: Deno.TcpConn, headerSize: number) {
    super(conn, "package");
    this.headerSize = headerSize;
  }

  static async connect(port: number, headerSize: number): Promise<PkgClient> {
    return new PkgClient(await Deno.connect({ hostname: "127.0.0.1", port }), headerSize);
  }

  /**
   * Connects and sends goim's auth JSON as the first package; resolves once the hub has
   * registered the key, since pkg has no auth reply to wait for.
   */
  static async auth(
    comet: Comet,
    port: number,
    headerSize: number,
    auth: Record<string, unknown>,
  ): Promise<PkgClient> {
    const c = await PkgClient.connect(port, headerSize);
    await c.send(JSON.stringify(auth));
    const key = String(auth.key);
    if (!await until(() => comet.channel(key) !== undefined)) {
      await c.close();
      assert.fail(`auth of ${key}`);
    }
    return c;
  }

  protected override decode(chunk: Uint8Array): Uint8Array[] {
    this.#buf = concat([this.#buf, chunk]);
    const h = this.headerSize;
    const out: Uint8Array[] = [];
    for (;;) {
      if (this.#buf.length < h) return out;
      let length = 0;
      for (let i = 0; i < h; i++) length = length * 256 + this.#buf[i]!;
      if (this.#buf.length < h + length) return out;
      out.push(this.#buf.slice(h, h + length));
      this.#buf = this.#buf.slice(h + length);
    }
  }

  send(payload: Uint8Array | string): Promise<void> {
    return this.write(pkg(this.headerSize, payload));
  }

  async nextText(timeout = 3000): Promise<string> {
    return text(await this.next(timeout));
  }

  /** True if nothing arrives within `ms`. */
  override silent(ms = 150): Promise<boolean> {
    return super.silent(ms);
  }

  /** Bytes received that did not make a whole package. */
  get leftover(): number {
    return this.#buf.length;
  }
}
