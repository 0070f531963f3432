/**
 * Operation codes of the goim v2 protocol. Business operations pushed by the
 * application start at 1000.
 *
 * @example
 * ```ts
 * import { Op } from "./op.ts";
 * console.log(Op.Heartbeat); // 2
 * ```
 */
export const Op = {
  Handshake: 0,
  HandshakeReply: 1,
  Heartbeat: 2,
  HeartbeatReply: 3,
  SendMsg: 4,
  SendMsgReply: 5,
  DisconnectReply: 6,
  Auth: 7,
  AuthReply: 8,
  Raw: 9,
  ProtoReady: 10,
  ProtoFinish: 11,
  ChangeRoom: 12,
  ChangeRoomReply: 13,
  Sub: 14,
  SubReply: 15,
  Unsub: 16,
  UnsubReply: 17,
  /** A push to a stream, with its offset (opt-in; docs/protocol.md section 8). */
  StreamPush: 18,
} as const;

/**
 * The name of a protocol operation, e.g. `"Heartbeat"`.
 *
 * @example
 * ```ts
 * import { Op, type OpName } from "./op.ts";
 *
 * const name: OpName = "Heartbeat";
 * console.log(Op[name]); // 2
 * ```
 */
export type OpName = keyof typeof Op;

/**
 * Whether `op` is one of the server's replies to a client request (1, 3, 5,
 * 6, 8, 13, 15, 17), as opposed to a push. Clients match replies by seq;
 * goim's WebSocket clients expect them as messages of their own.
 *
 * @example
 * ```ts
 * import { isReplyOp, Op } from "./op.ts";
 * console.log(isReplyOp(Op.AuthReply), isReplyOp(1000)); // true false
 * ```
 */
export function isReplyOp(op: number): boolean {
  switch (op) {
    case Op.HandshakeReply:
    case Op.HeartbeatReply:
    case Op.SendMsgReply:
    case Op.DisconnectReply:
    case Op.AuthReply:
    case Op.ChangeRoomReply:
    case Op.SubReply:
    case Op.UnsubReply:
      return true;
    default:
      return false;
  }
}

/**
 * The operations the protocol keeps for itself, an inclusive range: goim's 0
 * (Handshake) to 17 (UnsubReply), and Comet's 18 (StreamPush). Clients and transports read these as
 * protocol traffic whatever their body, so a push must not carry one: a
 * WebSocket wire answers op 6 with a close frame, op 9's body is walked as
 * frames, op 3 is taken as a heartbeat reply. Business ops start at 1000;
 * any other 32-bit op, negative ones included, is the application's.
 *
 * @example
 * ```ts
 * import { RESERVED_OPS } from "./op.ts";
 * console.log(`${RESERVED_OPS.min} to ${RESERVED_OPS.max}`); // "0 to 18"
 * ```
 */
export const RESERVED_OPS = { min: Op.Handshake, max: Op.StreamPush } as const;

/**
 * Whether `op` lies in {@linkcode RESERVED_OPS}, the operations the protocol
 * keeps for itself: whoever takes an op for a push (the push API, the hub, a
 * cluster) refuses these. That `op` is a 32-bit integer is checked apart.
 *
 * @example
 * ```ts
 * import { isReservedOp, Op } from "./op.ts";
 * console.log(isReservedOp(Op.DisconnectReply), isReservedOp(Op.Raw)); // true true
 * console.log(isReservedOp(19), isReservedOp(1000), isReservedOp(-1)); // false false false
 * ```
 */
export function isReservedOp(op: number): boolean {
  return op >= RESERVED_OPS.min && op <= RESERVED_OPS.max;
}

/**
 * Throws when a push would carry `op`, one of the {@linkcode RESERVED_OPS}:
 * the one check and message for every place that takes a push (the hub, a
 * cluster that routes or keeps it before any hub sees it).
 *
 * @throws {RangeError} When `op` is reserved.
 *
 * @example
 * ```ts
 * import { assertPushOp } from "./op.ts";
 * assertPushOp(1000); // fine
 * try {
 *   assertPushOp(6);
 * } catch (err) {
 *   console.log((err as Error).message); // "Operation is reserved by the protocol (0 to 18): 6"
 * }
 * ```
 */
export function assertPushOp(op: number): void {
  if (isReservedOp(op)) {
    throw new RangeError(
      `Operation is reserved by the protocol (${RESERVED_OPS.min} to ${RESERVED_OPS.max}): ${op}`,
    );
  }
}
