// Big-endian integers of the goim header, read from bytes as they arrived:
// a DataView per frame would cost an object on the hot path.

/** The signed 32-bit big-endian integer at `i` of `b`. */
export function _int32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) | 0;
}

/** The signed 16-bit big-endian integer at `i` of `b`. */
export function _int16(b: Uint8Array, i: number): number {
  return (((b[i]! << 8) | b[i + 1]!) << 16) >> 16;
}
