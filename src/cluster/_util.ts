// Private helpers of the Redis cluster's parts: replies as text, bounded waits.
import type { RedisReply } from "./resp.ts";

/** Decodes the UTF-8 bulk strings of Redis replies (node ids, keys). */
export const text: TextDecoder = new TextDecoder();

/** The bulk strings of an array reply, decoded; anything else is left out. */
export function strings(reply: RedisReply): string[] {
  if (!Array.isArray(reply)) return [];
  const out: string[] = [];
  for (const item of reply) if (item instanceof Uint8Array) out.push(text.decode(item));
  return out;
}

/** Resolves with `promise`'s outcome, or with undefined after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((
    resolve,
  ) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
