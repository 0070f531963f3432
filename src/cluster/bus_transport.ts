/**
 * How the messages of a `BusCluster` travel between the workers of one
 * process: a {@linkcode BusTransport} posts a message to every peer and hands
 * each message it receives to the bus. Two kinds exist:
 *
 * - {@linkcode ChannelTransport}: a `BroadcastChannel` by name. Isolates that
 *   share nothing but a name can meet through it (`deno serve --parallel`),
 *   but Deno drops the oldest messages of a receiver more than 256 behind;
 *   the bus numbers its messages to notice and resync.
 * - `PortMesh` (`bus_port_mesh.ts`): one `MessagePort` per pair of workers,
 *   handed out by the `comet --workers N` supervisor. Lossless, and faster.
 *
 * @module
 */
/** What a {@linkcode BusTransport} tells the bus it serves. */
export interface BusReceiver {
  /** A message from another worker, as it arrived (a stranger's is the bus's to ignore). */
  message(data: unknown): void;
  /** Worker `workerId` is gone without a bye (it died): its figures must go. */
  gone(workerId: number): void;
}

/**
 * The way a `BusCluster` reaches the other workers of its process. The
 * cluster owns the transport it is given: it listens once and closes it.
 *
 * @example
 * ```ts
 * import { ChannelTransport } from "./bus_transport.ts";
 *
 * const transport = new ChannelTransport("comet-bus-doc");
 * transport.listen({ message: (data) => console.log(data), gone: () => {} });
 * transport.close();
 * ```
 */
export interface BusTransport {
  /**
   * Starts handing received messages to `receiver`.
   *
   * @throws {TypeError} When already listening.
   */
  listen(receiver: BusReceiver): void;
  /**
   * Sends `message` (a bus message; the transport never looks inside) to
   * every peer, each of which receives its own structured clone.
   */
  post(message: unknown): void;
  /**
   * Sends `message` to worker `workerId` alone, behind everything posted to
   * it before (one FIFO per pair of workers); false when this transport has
   * no way to that worker now. Absent on a transport that can only
   * broadcast (a `BroadcastChannel`): such a bus cannot route streams to
   * their owners.
   */
  postTo?(workerId: number, message: unknown): boolean;
  /** Stops sending and receiving; posting afterwards does nothing. */
  close(): void;
}

/**
 * A {@linkcode BusTransport} over the `BroadcastChannel` named `name`: every
 * isolate of the process that opens the same name is a peer (a sender does
 * not hear itself). Not lossless: Deno keeps at most 256 unread messages per
 * receiver and drops the oldest past that.
 *
 * @example
 * ```ts
 * import { ChannelTransport } from "./bus_transport.ts";
 *
 * const transport = new ChannelTransport("comet-bus-doc");
 * transport.post({ hello: "any isolate listening on comet-bus-doc" });
 * transport.close();
 * ```
 */
export class ChannelTransport implements BusTransport {
  #channel: BroadcastChannel;
  #listening = false;
  #closed = false;

  /**
   * Opens the channel.
   *
   * @throws {TypeError} When `name` is empty.
   */
  constructor(name: string) {
    if (typeof name !== "string" || name === "") {
      throw new TypeError("Bus channel name must not be empty");
    }
    this.#channel = new BroadcastChannel(name);
  }

  /** Hands every message heard on the channel to `receiver`; nobody is ever gone here. */
  listen(receiver: BusReceiver): void {
    if (this.#listening) throw new TypeError("Bus transport is already listening");
    this.#listening = true;
    this.#channel.onmessage = (e: MessageEvent) => receiver.message(e.data);
  }

  /** Posts `message` once; the channel clones it for each receiving isolate. */
  post(message: unknown): void {
    if (!this.#closed) this.#channel.postMessage(message);
  }

  /** Closes the channel (an open one keeps the isolate alive). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel.close();
  }
}
