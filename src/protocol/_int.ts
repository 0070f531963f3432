// Big-endian integers of the goim header, read and written byte by byte: a
// DataView per frame would cost an object on the hot path, and asking a small
// array for its `buffer` moves its bytes off the V8 heap.

/** The signed 32-bit big-endian integer at `i` of `b`. */
export function _int32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) | 0;
}

/** Writes `value` as a big-endian 32-bit integer at `i` of `b`. */
export function _putInt32(b: Uint8Array, i: number, value: number): void {
  b[i] = value >>> 24;
  b[i + 1] = value >>> 16;
  b[i + 2] = value >>> 8;
  b[i + 3] = value;
}

/** The signed 16-bit big-endian integer at `i` of `b`. */
export function _int16(b: Uint8Array, i: number): number {
  return (((b[i]! << 8) | b[i + 1]!) << 16) >> 16;
}
