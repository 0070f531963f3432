/**
 * The lossless bus transport of the `comet --workers N` supervisor: one
 * `MessageChannel` per pair of workers, its two ports transferred to the two
 * workers. A port queues what it is sent until read, however much, and keeps
 * the order, so no message between two workers is ever dropped.
 *
 * @module
 */
import type { BusReceiver, BusTransport } from "./bus_transport.ts";

/**
 * A worker's ports to its peers, by worker number: a
 * {@linkcode BusTransport} that posts each message once per peer port
 * (one structured clone per peer worker, never per member).
 *
 * Whoever hands out the ports (the supervisor) keeps the mesh whole: a new
 * worker gets a port to every live one, each live one
 * {@linkcode PortMesh.connect}s the other end, and when a worker dies each
 * live one {@linkcode PortMesh.disconnect}s it, which tells the bus that the
 * peer is gone. Messages that arrive before {@linkcode PortMesh.listen} wait
 * in their port.
 *
 * @example
 * ```ts
 * import { PortMesh } from "./bus_port_mesh.ts";
 *
 * const [a, b] = [new PortMesh(), new PortMesh()];
 * const { port1, port2 } = new MessageChannel();
 * a.connect(1, port1);
 * b.connect(0, port2);
 * console.log(a.peers, b.peers); // [ 1 ] [ 0 ]
 * a.close();
 * b.close();
 * ```
 */
export class PortMesh implements BusTransport {
  #ports = new Map<number, MessagePort>();
  #receiver: BusReceiver | undefined;
  #closed = false;

  /** The peer workers this mesh has a port to, ascending. */
  get peers(): number[] {
    return [...this.#ports.keys()].sort((a, b) => a - b);
  }

  /**
   * Adopts `port` as the way to worker `workerId`. A port it had to that
   * worker (an earlier start of it) is closed, and the bus told that one is
   * gone. A closed mesh closes the port at once.
   *
   * @throws {RangeError} When `workerId` is not a non-negative integer.
   */
  connect(workerId: number, port: MessagePort): void {
    if (!Number.isSafeInteger(workerId) || workerId < 0) {
      throw new RangeError(`Worker id must be a non-negative integer: ${workerId}`);
    }
    if (this.#closed) {
      port.close();
      return;
    }
    if (this.#ports.has(workerId)) this.disconnect(workerId);
    this.#ports.set(workerId, port);
    if (this.#receiver !== undefined) port.onmessage = this.#onMessage;
  }

  /**
   * Closes the port to worker `workerId` (it died) and tells the bus that it
   * is gone; what it sent and was not read yet goes with it.
   */
  disconnect(workerId: number): void {
    const port = this.#ports.get(workerId);
    if (port === undefined) return;
    this.#ports.delete(workerId);
    port.close();
    this.#receiver?.gone(workerId);
  }

  /**
   * Starts reading every port, now and as they come, into `receiver`.
   *
   * @throws {TypeError} When already listening.
   */
  listen(receiver: BusReceiver): void {
    if (this.#receiver !== undefined) throw new TypeError("Bus transport is already listening");
    this.#receiver = receiver;
    if (this.#closed) return;
    for (const port of this.#ports.values()) port.onmessage = this.#onMessage;
  }

  /**
   * Posts `message` to every peer port: each clones it. The push bodies are
   * not transferred: the sender's writers may still hold them, and a buffer
   * can be transferred to one peer only.
   */
  post(message: unknown): void {
    for (const port of this.#ports.values()) port.postMessage(message);
  }

  /**
   * Posts `message` to worker `workerId`'s port alone, behind everything
   * posted to that port before; false when there is no port to it (it has
   * not started, or died and was disconnected).
   */
  postTo(workerId: number, message: unknown): boolean {
    const port = this.#ports.get(workerId);
    if (port === undefined) return false;
    port.postMessage(message);
    return true;
  }

  /** Closes every port (an open port that is read keeps the isolate alive). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const port of this.#ports.values()) port.close();
    this.#ports.clear();
  }

  #onMessage = (e: MessageEvent): void => {
    this.#receiver?.message(e.data);
  };
}
