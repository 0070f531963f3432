/**
 * The ops a connection watches, kept as cheaply as the usual cases allow:
 * none (`undefined`), one (the number itself, no Set) or a Set of several.
 * Functions over the value rather than a class, so that a channel keeps it
 * in one field; the test a push makes (`Channel.watches`) stays inline there.
 *
 * @module
 */

/** A set of ops: none, one, or several. */
export type OpSet = number | Set<number> | undefined;

/**
 * `set` with `ops` added; a Set given is changed in place.
 *
 * @example
 * ```ts
 * import { opSetAdd } from "./op_set.ts";
 * console.log(opSetAdd(undefined, [7])); // 7
 * ```
 */
export function opSetAdd(set: OpSet, ops: Iterable<number>): OpSet {
  for (const op of ops) {
    if (set === undefined) set = op;
    else if (typeof set === "number") {
      if (set !== op) set = new Set([set, op]);
    } else set.add(op);
  }
  return set;
}

/**
 * `set` with `ops` removed; a Set left with one op becomes that op.
 *
 * @example
 * ```ts
 * import { opSetRemove } from "./op_set.ts";
 * console.log(opSetRemove(new Set([1, 2]), [1])); // 2
 * ```
 */
export function opSetRemove(set: OpSet, ops: Iterable<number>): OpSet {
  for (const op of ops) {
    if (set === undefined) return set;
    if (typeof set === "number") {
      if (set === op) set = undefined;
    } else {
      set.delete(op);
      if (set.size === 1) set = set.values().next().value!;
    }
  }
  return set;
}

/**
 * The ops of `set`, in no particular order.
 *
 * @example
 * ```ts
 * import { opSetList } from "./op_set.ts";
 * console.log(opSetList(5)); // [5]
 * ```
 */
export function opSetList(set: OpSet): number[] {
  return set === undefined ? [] : typeof set === "number" ? [set] : [...set];
}

/**
 * How many ops `set` holds.
 *
 * @example
 * ```ts
 * import { opSetSize } from "./op_set.ts";
 * console.log(opSetSize(undefined)); // 0
 * ```
 */
export function opSetSize(set: OpSet): number {
  return set === undefined ? 0 : typeof set === "number" ? 1 : set.size;
}
