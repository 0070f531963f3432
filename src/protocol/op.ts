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
} as const;

/** The name of a protocol operation, e.g. `"Heartbeat"`. */
export type OpName = keyof typeof Op;
