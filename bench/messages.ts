// The JSON lines between the harness (bench/load.ts) and its child processes:
// the load generators (bench/loadgen.ts), the plain-Deno baseline server
// (bench/baseline_server.ts) and the Deno.serve handler server
// (bench/serve_handler_server.ts). Each command is one line with its name in
// `cmd` and an `id`; each reply one line with the same `id` and `ok`.
import type { CompactHistogram } from "./_common.ts";

/** A child's command set: command name to its arguments and its reply. */
export type Protocol = Record<string, { args: object; reply: object }>;

/** How a load generator's clients speak: goim over TCP or WebSocket, or raw TCP to the baseline. */
export type ClientKind = "tcp" | "ws" | "raw";

/** `open`: connections to open and authenticate. */
export interface OpenArgs {
  kind: ClientKind;
  port: number;
  count: number;
  concurrency?: number;
  /** Default live://bench. */
  room?: string;
  keyPrefix?: string;
  keyStart?: number;
  /** Read buffer per connection, bytes. */
  bufSize?: number;
  /** Opt in to streams (`recover: {}` in the auth JSON): pushes come as op 18. */
  streams?: boolean;
}

/** What `open` did. */
export interface OpenReply {
  opened: number;
  failed: number;
  /** The first few failures' messages. */
  errors: string[];
  elapsedMs: number;
  /** Connections held after it. */
  live: number;
}

/** A load generator's counters since its last `reset`. */
export interface GenCounters {
  deliveries: number;
  /** op-6 frames seen. */
  disconnects: number;
  wsCloses: number;
  otherOps: number;
  reads: number;
  bytes: number;
  closed: number;
  errors: number;
  firstDeliveryAt: number;
  lastDeliveryAt: number;
  live: number;
}

/** Push-to-delivery latency in ms (null when nothing was delivered). */
export interface Latency {
  count: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

/** Counters plus the raw parts of the latency figures, for the harness to merge. */
export interface GenDetail extends GenCounters {
  /** This generator alone. */
  latency: Latency;
  hist: CompactHistogram;
  /** Mean latency of every connection that got any. */
  perConnMeans: number[];
  timelineStart: number;
  fineWindowMs: number;
  /** Flat [index, n, sum, max, ...] windows of `fineWindowMs` from `timelineStart`. */
  windows: number[];
}

/** A reply that carries only the connections a generator holds. */
export interface LiveReply {
  live: number;
}

/** A reply with nothing in it. */
export type Empty = Record<never, never>;

/** The load generator's commands. */
export interface LoadgenProtocol extends Protocol {
  open: { args: OpenArgs; reply: OpenReply };
  /** Zeroes the counters; timeline windows count from `t0` (absolute ms). */
  reset: { args: { t0: number }; reply: LiveReply };
  stats: { args: { detail: false }; reply: GenCounters };
  /** Waits until `expect` deliveries, or none for `idleMs`, at most `maxMs`. */
  quiet: {
    args: { idleMs: number; maxMs: number; expect: number | undefined };
    reply: GenDetail;
  };
  close_all: { args: Empty; reply: LiveReply };
  exit: { args: Empty; reply: Empty };
}

/** Deno.memoryUsage() of a server after a full GC, with its V8 heap spaces where known. */
export interface MemUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  /** Space name to [committed, used] bytes. */
  spaces?: Record<string, [number, number]>;
  /** Date.now() when sampled (Comet's BENCH_MEMORY line). */
  at?: number;
}

/** The reply of a server's `gc`. */
export interface GcReply {
  gc: boolean;
  memory: MemUsage;
}

/** The baseline server's `fanout`: batches of `frames` frames to every connection. */
export interface FanoutReply {
  batches: number;
  writes: number;
  failed: number;
  frames: number;
  k: number;
  conns: number;
  elapsedMs: number;
}

/** The baseline server's `stream`: frames at `rate` per second through coalescing writers. */
export interface StreamReply {
  produced: number;
  writes: number;
  failed: number;
  k: number;
  conns: number;
  elapsedMs: number;
}

/** The baseline server's commands. */
export interface BaselineProtocol extends Protocol {
  gc: { args: Empty; reply: GcReply };
  fanout: { args: { ms: number; frames: number; k: number }; reply: FanoutReply };
  stream: { args: { ms: number; rate: number; k: number }; reply: StreamReply };
  exit: { args: Empty; reply: Empty };
}

/** The Deno.serve handler server's commands. */
export interface ServeHandlerProtocol extends Protocol {
  gc: { args: Empty; reply: GcReply };
  exit: { args: Empty; reply: Empty };
}

/** A child with no commands (Comet itself). */
export type NoProtocol = Record<never, never>;
