import { TcpWire } from "./tcp.ts";
import { WsWire } from "./websocket.ts";

/** Read buffers of this process's socket wires; see {@linkcode readBufferFigures}. */
export interface ReadBufferFigures {
  /** Buffers held, one per connection with a read pending. */
  used: number;
  /** Shared slabs the buffers are carved from. */
  slabs: number;
}

/**
 * Read buffers of this process's TCP and WebSocket wires together: held
 * (one per connection with a read pending) and the slabs they are carved
 * from. Process-wide, as the pools are.
 *
 * @example
 * ```ts
 * import { readBufferFigures } from "./read_buffers.ts";
 * console.log(readBufferFigures()); // { used: 0, slabs: 0 } before any connection
 * ```
 */
export function readBufferFigures(): ReadBufferFigures {
  return {
    used: TcpWire.readBuffers.used + WsWire.readBuffers.used,
    slabs: TcpWire.readBuffers.slabs + WsWire.readBuffers.slabs,
  };
}
