import { type OpSet, opSetAdd, opSetList, opSetRemove, opSetSize } from "./op_set.ts";

/**
 * The business ops a connection watches (goim's op 14 and 16): pushes to
 * keys, mids and everyone reach it only for those. The base of `Channel`,
 * so that the test every such push makes stays one inline field read.
 *
 * @example
 * ```ts
 * import { OpWatcher } from "./op_watcher.ts";
 *
 * const watcher = new OpWatcher();
 * watcher.watch([1000, 1001]);
 * console.log(watcher.watches(1001), watcher.watchCount); // true 2
 * ```
 */
export class OpWatcher {
  /** The watched ops: none, one (the usual case, kept without a Set) or a Set of several. */
  #watch: OpSet;

  /** Whether a push of business op `op` to keys, mids or all reaches this connection. */
  watches(op: number): boolean {
    // Inline rather than through op_set.ts: every push to keys, mids or all asks it.
    const w = this.#watch;
    return w === op || (typeof w === "object" && w.has(op));
  }

  /** Adds ops to the watched set. */
  watch(ops: Iterable<number>): void {
    this.#watch = opSetAdd(this.#watch, ops);
  }

  /** Removes ops from the watched set. */
  unwatch(ops: Iterable<number>): void {
    this.#watch = opSetRemove(this.#watch, ops);
  }

  /** The watched ops, in no particular order. */
  watched(): number[] {
    return opSetList(this.#watch);
  }

  /** Number of watched ops. */
  get watchCount(): number {
    return opSetSize(this.#watch);
  }
}
