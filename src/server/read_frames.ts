import type { Frame } from "../protocol/frame.ts";
import type { FrameReader, Wire } from "./wire.ts";

/**
 * Hands the wire's next frame to `onFrame`; a read that throws or rejects
 * goes to `failed`.
 *
 * @example
 * ```ts ignore
 * import { readFrame } from "./read_frames.ts";
 * readFrame(wire, (frame) => console.log(frame?.op), (err) => console.error(err));
 * ```
 */
export function readFrame(
  wire: Wire,
  onFrame: (frame: Frame | null) => void,
  failed: (err: unknown) => void,
): void {
  let read: Promise<Frame | null>;
  try {
    read = wire.read();
  } catch (err) {
    return failed(err);
  }
  read.then(onFrame, failed);
}

/**
 * Reads a wire that does not deliver its own frames (no `_listen`) and hands
 * each frame to `reader`, as a listening wire would: two closures per
 * connection instead of none.
 *
 * @example
 * ```ts ignore
 * import { pullFrames } from "./read_frames.ts";
 * pullFrames(wire, channel); // the channel hands each frame to the hub
 * ```
 */
export function pullFrames(wire: Wire, reader: FrameReader): void {
  const ended = (err?: unknown): void => reader._ended(err);
  const onFrame = (frame: Frame | null): void => {
    if (frame === null) return reader._ended();
    const go = reader._frame(frame);
    if (go === true) readFrame(wire, onFrame, ended);
    else if (go !== false) go.then((more) => more && readFrame(wire, onFrame, ended), ended);
  };
  readFrame(wire, onFrame, ended);
}
