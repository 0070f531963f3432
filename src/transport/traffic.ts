/**
 * Bytes one transport has moved, process-wide. The wires add to it where
 * they read from and write to their sockets: one addition per read or write
 * call, never per frame.
 */
export interface TrafficCounter {
  /** Bytes read from clients. */
  bytesIn: number;
  /** Bytes written to clients. */
  bytesOut: number;
}

// Process-wide on purpose: the figures describe the process's sockets, which is
// what a scrape of one server process wants, and a wire need not know its hub.
const _counters = new Map<string, TrafficCounter>();

/**
 * The counter of `transport` (`"tcp"`, `"ws"`, `"pkg"` ...), created at zero
 * on first use. A wire looks it up once, when it is made, and keeps it.
 *
 * @example
 * ```ts
 * import { trafficCounter } from "./traffic.ts";
 *
 * const tcp = trafficCounter("tcp");
 * tcp.bytesIn += 16; // a wire that read one empty goim frame
 * console.log(trafficCounter("tcp") === tcp); // true
 * ```
 */
export function trafficCounter(transport: string): TrafficCounter {
  let counter = _counters.get(transport);
  if (counter === undefined) _counters.set(transport, counter = { bytesIn: 0, bytesOut: 0 });
  return counter;
}

/**
 * Every transport's counter so far, by transport name. The map and its
 * counters are live; copy them to keep a snapshot.
 *
 * @example
 * ```ts
 * import { traffic } from "./traffic.ts";
 *
 * for (const [transport, { bytesIn, bytesOut }] of traffic()) {
 *   console.log(transport, bytesIn, bytesOut);
 * }
 * ```
 */
export function traffic(): ReadonlyMap<string, Readonly<TrafficCounter>> {
  return _counters;
}

/**
 * Writes all of `data` to `conn`, looping over partial writes, and counts the
 * bytes on `counter`. Every socket wire writes through it. Resolves `true`
 * when the socket took only part of `data` at first (its buffer was full:
 * the peer reads slower than it is written to), else `false`.
 *
 * @example
 * ```ts ignore
 * import { trafficCounter, writeAll } from "./traffic.ts";
 * const conn = await Deno.connect({ port: 3101 });
 * await writeAll(conn, new Uint8Array(16), trafficCounter("tcp"));
 * ```
 */
export function writeAll(
  conn: Deno.Conn,
  data: Uint8Array,
  counter: TrafficCounter,
): Promise<boolean> {
  // An empty write costs no syscall.
  if (data.length === 0) return Promise.resolve(false);
  // Not an async function: nearly every write is whole at the first call,
  // and this way it costs one continuation instead of a suspended function.
  return conn.write(data).then((n) => {
    counter.bytesOut += n;
    return n < data.length ? _writeRest(conn, data.subarray(n), counter) : false;
  });
}

/** The rest of a write the socket took only part of. */
async function _writeRest(
  conn: Deno.Conn,
  data: Uint8Array,
  counter: TrafficCounter,
): Promise<true> {
  let at = 0;
  while (at < data.length) {
    const n = await conn.write(data.subarray(at));
    counter.bytesOut += n;
    at += n;
  }
  return true;
}

/**
 * Closes `conn`, ignoring that the runtime may have closed it already.
 *
 * @example
 * ```ts ignore
 * import { closeQuietly } from "./traffic.ts";
 * const conn = await Deno.connect({ port: 3101 });
 * closeQuietly(conn);
 * closeQuietly(conn); // no error
 * ```
 */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed by the runtime.
  }
}
