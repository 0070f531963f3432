// A goim v2 client over WebSocket at its smallest, for pages with no build step:
// it authenticates, heartbeats, and hands every frame to `onframe`, op-9 batches
// unpacked. Comet's own client (src/client/mod_browser.ts, bundled with
// `deno bundle`) adds request/reply matching by seq, reconnection and more.

export const Op = {
  Heartbeat: 2,
  HeartbeatReply: 3,
  SendMsg: 4,
  SendMsgReply: 5,
  DisconnectReply: 6,
  Auth: 7,
  AuthReply: 8,
  Raw: 9,
  ChangeRoom: 12,
  ChangeRoomReply: 13,
};

const encoder = new TextEncoder();

/** A goim frame: packLen, headerLen 16, ver 1, op, seq (big-endian), then the body. */
export function encodeFrame(op, seq, body = "") {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const frame = new Uint8Array(16 + bytes.length);
  const view = new DataView(frame.buffer);
  view.setInt32(0, frame.length);
  view.setInt16(4, 16);
  view.setInt16(6, 1);
  view.setInt32(8, op);
  view.setInt32(12, seq);
  frame.set(bytes, 16);
  return frame;
}

/** The frames in `bytes`. Pushes flushed together arrive as one op-9 frame holding them. */
export function* decodeFrames(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < bytes.length;) {
    const packLen = view.getInt32(at);
    if (packLen < 16 || at + packLen > bytes.length) throw new Error("Malformed goim frame");
    const op = view.getInt32(at + 8);
    const seq = view.getInt32(at + 12);
    const body = bytes.subarray(at + 16, at + packLen);
    if (op === Op.Raw) yield* decodeFrames(body);
    else yield { op, seq, body };
    at += packLen;
  }
}

/** One connection to a goim server; `auth` is goim's auth JSON object. */
export class GoimSocket {
  #ws;
  #seq = 0;
  #heartbeats;

  constructor(url, auth, { heartbeat = 30_000, onframe, onclose }) {
    this.#ws = new WebSocket(url);
    this.#ws.binaryType = "arraybuffer";
    this.#ws.onopen = () => this.send(Op.Auth, JSON.stringify(auth));
    this.#ws.onmessage = (event) => {
      for (const frame of decodeFrames(new Uint8Array(event.data))) {
        if (frame.op === Op.AuthReply) {
          this.heartbeat();
          this.#heartbeats = setInterval(() => this.heartbeat(), heartbeat);
        }
        onframe(frame);
      }
    };
    this.#ws.onclose = (event) => {
      clearInterval(this.#heartbeats);
      onclose?.(event);
    };
  }

  /** Sends one frame with a fresh seq and returns the seq; its reply carries the same. */
  send(op, body) {
    const seq = this.#seq = (this.#seq % 0x7fffffff) + 1;
    this.#ws.send(encodeFrame(op, seq, body));
    return seq;
  }

  /** The reply (op 3) carries the room's online count; the server drops a silent client. */
  heartbeat() {
    this.send(Op.Heartbeat);
  }

  close() {
    this.#ws.close();
  }
}
