// Private helpers of the hub's parts: option checks, promises, sleeping.

/** `value` when set, checked positive and finite; else `fallback`. */
export function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number: ${value}`);
  }
  return value;
}

/** As {@linkcode positive}, and an integer. */
export function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const n = positive(name, value, fallback);
  if (!Number.isSafeInteger(n)) throw new RangeError(`${name} must be an integer: ${n}`);
  return n;
}

/** Whether `n` fits a signed 32-bit field. */
export function isInt32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff;
}

/** Whether an operator's result is to be awaited: a promise or another thenable. */
export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/** Resolves after `ms`, or at once when `signal` aborts; leaves no timer behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
