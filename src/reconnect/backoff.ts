/**
 * How a reconnecting client (the goim client, the Redis client) spaces its
 * reconnection attempts. Durations are in milliseconds.
 *
 * @example
 * ```ts
 * import type { ReconnectOptions } from "./backoff.ts";
 *
 * const reconnect: ReconnectOptions = { initialDelay: 1_000, maxDelay: 60_000, jitter: 0.3 };
 * ```
 */
export interface ReconnectOptions {
  /** Delay before the first attempt after a drop. Default 500. */
  initialDelay?: number;
  /** Cap on any delay. Default 30 000. */
  maxDelay?: number;
  /** Each failed attempt multiplies the delay by this. Default 2. */
  factor?: number;
  /**
   * Share of each delay that is random, from 0 (none) to 1 (anywhere between
   * 0 and the delay), so that clients dropped together do not return together.
   * Default 0.5.
   */
  jitter?: number;
  /** Consecutive failed attempts before the client gives up and closes. Default `Infinity`. */
  maxAttempts?: number;
}

/**
 * Checks reconnect options and fills in the defaults.
 *
 * @throws {RangeError} When an option is out of range.
 *
 * @example
 * ```ts
 * import { reconnectPolicy } from "./backoff.ts";
 * console.log(reconnectPolicy({ initialDelay: 100 }).maxDelay); // 30000
 * ```
 */
export function reconnectPolicy(options: ReconnectOptions = {}): Required<ReconnectOptions> {
  const policy = {
    initialDelay: options.initialDelay ?? 500,
    maxDelay: options.maxDelay ?? 30_000,
    factor: options.factor ?? 2,
    jitter: options.jitter ?? 0.5,
    maxAttempts: options.maxAttempts ?? Infinity,
  };
  if (!(policy.initialDelay >= 0 && Number.isFinite(policy.initialDelay))) {
    throw new RangeError(`Initial delay must be a non-negative number: ${policy.initialDelay}`);
  }
  if (!(policy.maxDelay >= policy.initialDelay && Number.isFinite(policy.maxDelay))) {
    throw new RangeError(
      `Max delay must be a number at least the initial delay: ${policy.maxDelay}`,
    );
  }
  if (!(policy.factor >= 1 && Number.isFinite(policy.factor))) {
    throw new RangeError(`Backoff factor must be a number of at least 1: ${policy.factor}`);
  }
  if (!(policy.jitter >= 0 && policy.jitter <= 1)) {
    throw new RangeError(`Jitter must be between 0 and 1: ${policy.jitter}`);
  }
  const max = policy.maxAttempts;
  if (!(max === Infinity || (Number.isSafeInteger(max) && max >= 1))) {
    throw new RangeError(`Max attempts must be a positive integer or Infinity: ${max}`);
  }
  return policy;
}

/**
 * The delay before reconnection attempt `attempt` (0 for the first after a
 * drop): exponential from `initialDelay` by `factor`, capped at `maxDelay`,
 * then shortened by a random share of up to `jitter`.
 *
 * @param attempt Failed attempts so far since the drop.
 * @param policy Checked options, from {@linkcode reconnectPolicy}.
 * @param random A number in [0, 1); `Math.random()` by default.
 * @returns Milliseconds to wait.
 *
 * @example
 * ```ts
 * import { reconnectDelay, reconnectPolicy } from "./backoff.ts";
 * const policy = reconnectPolicy({ initialDelay: 100, jitter: 0 });
 * console.log(reconnectDelay(3, policy)); // 800
 * ```
 */
export function reconnectDelay(
  attempt: number,
  policy: Required<ReconnectOptions>,
  random: number = Math.random(),
): number {
  const base = Math.min(policy.maxDelay, policy.initialDelay * policy.factor ** attempt);
  return base - base * policy.jitter * random;
}
