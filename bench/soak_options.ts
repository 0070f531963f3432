// The soak's flags: what a run does, its defaults, and reading them from the command line.

/** What a soak run does; see the module doc for the flags. */
export interface SoakOptions {
  /** Client slots; each runs sessions back to back. */
  connections: number;
  /** How long the churn lasts, in ms. */
  duration: number;
  /** Rooms the clients spread over. */
  rooms: number;
  /** Longest a session stays connected, in ms. */
  life: number;
  /** Pause between pushes, in ms. */
  pushInterval: number;
  /** Share of sessions over WebSocket. */
  wsShare: number;
  /** Share of sessions over pkg. */
  pkgShare: number;
  /** How long the server may take to drop everything once the clients left, in ms. */
  settle: number;
  /** How far above its start the server's RSS may end, in MiB. */
  rssSlack: number;
  /**
   * How much the server's RSS may grow over the second half of the churn, in
   * MiB: a server whose RSS ends higher than `rssSlack` allows still passes
   * when it stopped growing (memory kept for reuse, not leaked).
   */
  rssGrowth: number;
  /** How far above its start the server's V8 heap in use may end, in MiB. */
  heapSlack: number;
  /** How long to wait for the server's memory to come back down, in ms. */
  memoryWait: number;
  /** Seed of the clients' random choices. */
  seed: number;
  /** The server's `--workers`, where the command has that flag. */
  workers: number;
}

const DEFAULTS: SoakOptions = {
  connections: 2_000,
  duration: 60_000,
  rooms: 50,
  life: 4_000,
  pushInterval: 25,
  wsShare: 0.3,
  pkgShare: 0.1,
  settle: 20_000,
  rssSlack: 64,
  rssGrowth: 16,
  heapSlack: 32,
  memoryWait: 30_000,
  seed: 1,
  workers: 1,
};

/** A duration (`500ms`, `5s`, `2m`, `1h`; bare numbers are ms) in ms. */
function _duration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!m) throw new RangeError(`Not a duration: ${text}`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] ?? "ms"]!;
  return Math.round(Number(m[1]) * unit);
}

/**
 * Reads the soak's flags.
 *
 * @throws {RangeError} On an unknown flag or a bad value.
 */
export function parseSoakArgs(args: readonly string[]): SoakOptions {
  const out = { ...DEFAULTS, seed: Date.now() % 0x7fffffff };
  const numbers: Record<string, keyof SoakOptions> = {
    "--connections": "connections",
    "--rooms": "rooms",
    "--ws-share": "wsShare",
    "--pkg-share": "pkgShare",
    "--rss-slack": "rssSlack",
    "--rss-growth": "rssGrowth",
    "--heap-slack": "heapSlack",
    "--seed": "seed",
    "--workers": "workers",
  };
  const durations: Record<string, keyof SoakOptions> = {
    "--duration": "duration",
    "--life": "life",
    "--push-interval": "pushInterval",
    "--settle": "settle",
    "--memory-wait": "memoryWait",
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split("=", 2) as [string, string | undefined];
    const value = inline ?? args[++i];
    if (value === undefined) throw new RangeError(`${flag} needs a value`);
    if (flag in numbers) {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new RangeError(`Bad ${flag}: ${value}`);
      out[numbers[flag]!] = n;
    } else if (flag in durations) {
      out[durations[flag]!] = _duration(value);
    } else {
      throw new RangeError(`Unknown flag: ${flag}`);
    }
  }
  if (out.connections < 1 || !Number.isInteger(out.connections)) {
    throw new RangeError(`Bad --connections: ${out.connections}`);
  }
  if (out.workers < 1 || !Number.isInteger(out.workers)) {
    throw new RangeError(`Bad --workers: ${out.workers}`);
  }
  if (out.wsShare + out.pkgShare > 1) throw new RangeError("--ws-share + --pkg-share exceeds 1");
  return out;
}
