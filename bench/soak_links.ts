// The soak's clients: one link per session over TCP, WebSocket or pkg, each
// counting the pushes it receives.
import { FrameDecoder } from "../src/protocol/decoder.ts";
import { encodeFrame } from "../src/protocol/frame.ts";
import { Op } from "../src/protocol/op.ts";

const utf8 = new TextEncoder();

/** How a link speaks to the server. */
export type Transport = "tcp" | "ws" | "pkg";

/** One client connection, whatever its transport. */
export interface Link {
  /** Resolves true once the server took the auth, false if the link ended first. */
  readonly authed: Promise<boolean>;
  /** Resolves once the link is down. */
  readonly closed: Promise<void>;
  /** Sends a goim frame (pkg: its body as a package; heartbeats empty). */
  send(op: number, body?: Uint8Array): void;
  close(): void;
}

/** What every link adds to as it reads. */
export interface Counters {
  received: number;
  kicked: number;
}

function _deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A goim link over TCP. */
export async function tcpLink(port: number, auth: Uint8Array, counters: Counters): Promise<Link> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const authed = _deferred<boolean>();
  let writing = Promise.resolve();
  let seq = 0;
  const write = (bytes: Uint8Array) => {
    writing = writing.then(async () => {
      let at = 0;
      while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    }).catch(() => {});
  };
  const closed = (async () => {
    const decoder = new FrameDecoder({ maxBody: 1 << 20 });
    const buf = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        decoder.push(buf.subarray(0, n));
        for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
          if (f.op === Op.AuthReply) authed.resolve(true);
          else if (f.op >= 1000) counters.received++;
          else if (f.op === Op.DisconnectReply) counters.kicked++;
        }
      }
    } catch {
      // Closed by us, or reset.
    }
    authed.resolve(false);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  })();
  write(encodeFrame(Op.Auth, ++seq, auth));
  return {
    authed: authed.promise,
    closed,
    send: (op, body = new Uint8Array(0)) => write(encodeFrame(op, ++seq, body)),
    close: () => {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
  };
}

/** A goim link over WebSocket. */
export function wsLink(port: number, auth: Uint8Array, counters: Counters): Link {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/sub`);
  ws.binaryType = "arraybuffer";
  const authed = _deferred<boolean>();
  const closed = _deferred<void>();
  let seq = 0;
  const count = (op: number) => {
    if (op === Op.AuthReply) authed.resolve(true);
    else if (op >= 1000) counters.received++;
    else if (op === Op.DisconnectReply) counters.kicked++;
  };
  ws.onopen = () => ws.send(encodeFrame(Op.Auth, ++seq, auth));
  ws.onmessage = (e) => {
    const data = new DataView(e.data as ArrayBuffer);
    const op = data.getInt32(8);
    if (op !== Op.Raw) return count(op);
    // A batch: goim frames back to back after the outer header.
    for (let at = 16; at + 16 <= data.byteLength; at += data.getInt32(at)) {
      count(data.getInt32(at + 8));
      if (data.getInt32(at) < 16) break;
    }
  };
  ws.onclose = () => {
    authed.resolve(false);
    closed.resolve();
  };
  ws.onerror = () => {};
  return {
    authed: authed.promise,
    closed: closed.promise,
    send: (op, body = new Uint8Array(0)) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encodeFrame(op, ++seq, body));
    },
    close: () => ws.close(),
  };
}

/** A link over the pkg transport. */
export async function pkgLink(port: number, auth: Uint8Array, counters: Counters): Promise<Link> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const authed = _deferred<boolean>();
  let writing = Promise.resolve();
  const write = (payload: Uint8Array) => {
    const bytes = new Uint8Array(2 + payload.length);
    bytes[0] = payload.length >> 8;
    bytes[1] = payload.length & 0xff;
    bytes.set(payload, 2);
    writing = writing.then(async () => {
      let at = 0;
      while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    }).catch(() => {});
  };
  const closed = (async () => {
    let pending = new Uint8Array(0);
    const buf = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        const joined = new Uint8Array(pending.length + n);
        joined.set(pending);
        joined.set(buf.subarray(0, n), pending.length);
        let at = 0;
        while (joined.length - at >= 2) {
          const len = (joined[at]! << 8) | joined[at + 1]!;
          if (joined.length - at < 2 + len) break;
          // pkg sends no auth reply: the answer to the heartbeat sent after the auth says it.
          if (len === 0) authed.resolve(true);
          else counters.received++;
          at += 2 + len;
        }
        pending = joined.slice(at);
      }
    } catch {
      // Closed by us, or reset.
    }
    authed.resolve(false);
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  })();
  write(auth);
  write(new Uint8Array(0));
  return {
    authed: authed.promise,
    closed,
    send: (op, body = new Uint8Array(0)) => {
      if (op === Op.Heartbeat) write(new Uint8Array(0));
      else if (op === Op.SendMsg) write(body.length > 0 ? body : utf8.encode("."));
      // pkg has no room or watch requests.
    },
    close: () => {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
  };
}
