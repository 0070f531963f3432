import type { Comet } from "../server/comet.ts";
import type { Wire } from "../server/wire.ts";
import { AcceptErrorLog } from "./accept_errors.ts";
import { hostPort } from "../host_port.ts";
import { AddressInUseError } from "./listen_error.ts";

/**
 * Where to listen.
 *
 * @example
 * ```ts
 * import type { ListenOptions } from "./acceptor.ts";
 *
 * const api: ListenOptions = { hostname: "127.0.0.1", port: 3111 };
 * ```
 */
export interface ListenOptions {
  /** Interface to bind. Default `127.0.0.1`. */
  hostname?: string;
  /** Port; 0 picks a free one. */
  port: number;
  /**
   * Sets `SO_REUSEPORT`, so that the listeners of several workers share the
   * port and the kernel spreads connections over them. Needs `--unstable-net`.
   * Default `false`.
   */
  reusePort?: boolean;
}

/**
 * A PEM certificate chain and private key, for TLS listeners.
 *
 * @example
 * ```ts
 * import type { TlsCertificate } from "./acceptor.ts";
 *
 * async function loadCertificate(dir: string): Promise<TlsCertificate> {
 *   return {
 *     cert: await Deno.readTextFile(`${dir}/fullchain.pem`),
 *     key: await Deno.readTextFile(`${dir}/privkey.pem`),
 *   };
 * }
 * ```
 */
export interface TlsCertificate {
  /** PEM certificate chain. */
  cert: string;
  /** PEM private key. */
  key: string;
}

/** Turns an accepted connection into the transport's {@linkcode Wire}. */
export type WireFactory = (conn: Deno.Conn) => Wire;

/**
 * Binds a TCP listener, or a TLS one when `tls` is given. `listener` names
 * it in the error when the address is taken (`tcp`, `ws`, `tcpTls`, `wss`,
 * `pkg`, `api`).
 *
 * @throws {AddressInUseError} When another socket holds the address.
 *
 * @example
 * ```ts ignore
 * import { bindListener } from "./acceptor.ts";
 * const listener = bindListener({ hostname: "127.0.0.1", port: 0 });
 * ```
 */
export function bindListener(
  options: ListenOptions,
  tls?: TlsCertificate,
  listener?: string,
): Deno.Listener {
  const hostname = options.hostname ?? "127.0.0.1";
  // `reusePort` is in the unstable types only; an option left out keeps today's call.
  const reuse: { reusePort?: boolean } = options.reusePort ? { reusePort: true } : {};
  try {
    if (tls) {
      return Deno.listenTls({
        hostname,
        port: options.port,
        cert: tls.cert,
        key: tls.key,
        ...reuse,
      });
    }
    return Deno.listen({ transport: "tcp", hostname, port: options.port, ...reuse });
  } catch (err) {
    if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    throw new AddressInUseError(hostPort(hostname, options.port), listener, { cause: err });
  }
}

/**
 * The accept loop every socket transport shares: accepts connections, turns
 * each into a {@linkcode Wire} and hands it to the hub, which applies its
 * connection limits (a refused connection is closed there and then, before
 * any protocol). Closing it stops accepting; connections already accepted
 * are the hub's to close.
 *
 * @example
 * ```ts ignore
 * import { Comet } from "../server/comet.ts";
 * import { Acceptor, bindListener } from "./acceptor.ts";
 * import { TcpWire } from "./tcp.ts";
 *
 * const comet = new Comet();
 * const acceptor = new Acceptor(comet, bindListener({ port: 3101 }), "tcp", (conn) =>
 *   new TcpWire(conn));
 * ```
 */
export class Acceptor implements AsyncDisposable {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** Transport name, as the operator sees it: `"tcp"`, `"tls"`, `"ws"`, `"wss"`, `"pkg"`. */
  readonly transport: string;
  /** Settles when the accept loop has stopped. */
  readonly finished: Promise<void>;
  #listener: Deno.Listener;
  #closed = false;

  /**
   * Starts accepting on `listener`.
   *
   * @param comet The hub that serves each connection.
   * @param listener A bound TCP or TLS listener; the acceptor owns it.
   * @param transport Name reported in logs.
   * @param wire Makes the wire for each accepted connection.
   */
  constructor(comet: Comet, listener: Deno.Listener, transport: string, wire: WireFactory) {
    this.#listener = listener;
    this.addr = listener.addr as Deno.NetAddr;
    this.transport = transport;
    this.finished = this.#accept(comet, wire);
  }

  async #accept(comet: Comet, wire: WireFactory): Promise<void> {
    const errors = new AcceptErrorLog(this.transport, comet.logger);
    while (!this.#closed) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#closed || err instanceof Deno.errors.BadResource) return;
        // Out of file descriptors and the like: back off briefly, keep serving.
        errors.failed(err);
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if ("setNoDelay" in conn) {
        try {
          (conn as Deno.TcpConn).setNoDelay(true);
        } catch {
          // The peer may already be gone.
        }
      }
      let w: Wire;
      try {
        w = wire(conn);
      } catch (err) {
        comet.logger.error("Cannot set up connection", { transport: this.transport, error: err });
        conn.close();
        continue;
      }
      comet._serve(w);
    }
  }

  /** Stops accepting. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
  }

  /** Stops accepting and waits for the loop to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.finished;
  }
}
