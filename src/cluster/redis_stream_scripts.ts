/**
 * The Lua scripts that keep streams in Redis (streams on): one orders and
 * publishes every push to a room, users or everyone, one reads where streams
 * stand and what they kept. Each runs as one atomic step, so an offset, its
 * entry and its message never part, and pub/sub order is offset order.
 *
 * What a stream keeps (see {@linkcode RedisKeys.position} and
 * {@linkcode RedisKeys.history}): a hash with its `epoch` and last offset
 * `top`, and a Redis Stream whose entry `<offset>-1` holds the push's op
 * (`o`), body (`b`) and Redis's time in ms (`t`). A Stream because entries
 * are addressed by id, so `XRANGE` reads "after offset N" in one step and
 * `XADD MAXLEN` trims the oldest in the same step that appends; a list would
 * need the offset of its head kept apart, a sorted set would double the
 * memory. Age is not trimmed (`XTRIM MINID` trims by id, not time): readers
 * filter by `t`, and the Stream key expires `ttl` after its last push, when
 * every entry is too old anyway. The position hash expires a day (or `ttl`,
 * if longer) after its last use, so a client idle in a quiet stream resumes,
 * as {@linkcode MemoryHistory} does.
 *
 * @module
 */
import type { RedisClient } from "./redis_client.ts";
import { type RedisArg, RedisError, type RedisReply } from "./resp.ts";

// Shared by both scripts: the epoch of a stream seen for the first time is the caller's
// random candidate; a Stream left from a lost position must not hold the new epoch's ids.
const _OPEN = `
local function open(pos, hist, candidate)
  if redis.call('HSETNX', pos, 'epoch', candidate) == 1 then redis.call('DEL', hist) end
end
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
`;

/**
 * Orders one push and publishes it. KEYS: per stream its position and
 * history; then, for a room, its set of nodes, for users, each one's
 * registry hash. ARGV: 1 mode (room, mids, all), 2 epoch candidate, 3 size,
 * 4 ttl ms, 5 position ttl ms, 6 op, 7 body, 8 the envelope's first 6 bytes,
 * 9 its JSON header without the closing brace, 10 the channel of all or the
 * prefix of node channels, 11... the users. Returns the stamps (epoch,
 * offset, ...) and the channels published to with their receivers (node,
 * count, ...; "" for the channel of all).
 *
 * @example
 * ```ts
 * import { PUBLISH_SCRIPT, RedisScript } from "./redis_stream_scripts.ts";
 * const script = new RedisScript(PUBLISH_SCRIPT);
 * console.log(script.source.includes("XADD")); // true
 * ```
 */
export const PUBLISH_SCRIPT: string = _OPEN + `
local mode = ARGV[1]
local ms = string.format('%d', now_ms())
local function stamp(i)
  local pos, hist = KEYS[2 * i - 1], KEYS[2 * i]
  open(pos, hist, ARGV[2])
  local epoch = redis.call('HGET', pos, 'epoch')
  local offset = redis.call('HINCRBY', pos, 'top', 1)
  redis.call('XADD', hist, 'MAXLEN', ARGV[3], string.format('%d-1', offset),
    'o', ARGV[6], 'b', ARGV[7], 't', ms)
  redis.call('PEXPIRE', hist, ARGV[4])
  redis.call('PEXPIRE', pos, ARGV[5])
  return epoch, offset
end
local function u32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end
local function envelope(header)
  return ARGV[8] .. u32(#header) .. header .. ARGV[7]
end
local function pair(epoch, offset)
  return '[' .. epoch .. ',' .. string.format('%d', offset) .. ']'
end
local stamps, sent = {}, {}
if mode == 'mids' then
  local n = #ARGV - 10
  local epochs, offsets, groups, order = {}, {}, {}, {}
  for i = 1, n do
    local e, o = stamp(i)
    epochs[i], offsets[i] = e, o
    stamps[#stamps + 1] = e
    stamps[#stamps + 1] = o
    local seen = {}
    for _, node in ipairs(redis.call('HVALS', KEYS[2 * n + i])) do
      if not seen[node] then
        seen[node] = true
        local g = groups[node]
        if g == nil then
          g = {}
          groups[node] = g
          order[#order + 1] = node
        end
        g[#g + 1] = i
      end
    end
  end
  for _, node in ipairs(order) do
    local to, st = {}, {}
    for k, i in ipairs(groups[node]) do
      to[k] = ARGV[10 + i]
      st[k] = pair(epochs[i], offsets[i])
    end
    local header = ARGV[9] .. ',"to":[' .. table.concat(to, ',') .. '],"stamps":[' ..
      table.concat(st, ',') .. ']}'
    sent[#sent + 1] = node
    sent[#sent + 1] = redis.call('PUBLISH', ARGV[10] .. node, envelope(header))
  end
else
  local e, o = stamp(1)
  stamps[1], stamps[2] = e, o
  local bytes = envelope(ARGV[9] .. ',"stamp":' .. pair(e, o) .. '}')
  if mode == 'all' then
    sent[1], sent[2] = '', redis.call('PUBLISH', ARGV[10], bytes)
  else
    for _, node in ipairs(redis.call('SMEMBERS', KEYS[3])) do
      sent[#sent + 1] = node
      sent[#sent + 1] = redis.call('PUBLISH', ARGV[10] .. node, bytes)
    end
  end
end
return {stamps, sent}
`;

/**
 * Reads where streams stand and, for each, the entries after an offset.
 * KEYS: per stream its position and history. ARGV: 1 "1" to give a stream
 * without a position one (an epoch, top 0) and keep it alive, 2 epoch
 * candidate, 3 position ttl ms, then per stream: the epoch the reader holds,
 * the offset after which to read ("" for none), the last offset wanted (""
 * for the top). Entries are read only when the epoch is the stream's.
 * Returns Redis's time in ms, then per stream {epoch ("0": none), top,
 * entries as XRANGE gives them}.
 *
 * @example
 * ```ts
 * import { READ_SCRIPT, RedisScript } from "./redis_stream_scripts.ts";
 * const script = new RedisScript(READ_SCRIPT);
 * console.log(script.source.includes("XRANGE")); // true
 * ```
 */
export const READ_SCRIPT: string = _OPEN + `
local out = {string.format('%d', now_ms())}
for i = 1, #KEYS / 2 do
  local pos, hist = KEYS[2 * i - 1], KEYS[2 * i]
  if ARGV[1] == '1' then
    open(pos, hist, ARGV[2])
    redis.call('PEXPIRE', pos, ARGV[3])
  end
  local meta = redis.call('HMGET', pos, 'epoch', 'top')
  local epoch = meta[1] or '0'
  local top = tonumber(meta[2] or '0')
  local base = 3 * i + 1
  local entries = {}
  if ARGV[base] == epoch and ARGV[base + 1] ~= '' then
    local after = tonumber(ARGV[base + 1])
    local last = top
    if ARGV[base + 2] ~= '' then last = math.min(top, tonumber(ARGV[base + 2])) end
    if last > after then
      entries = redis.call('XRANGE', hist, string.format('%d-1', after + 1),
        string.format('%d-1', last))
    end
  end
  out[#out + 1] = {epoch, top, entries}
end
return out
`;

/**
 * A Lua script run by its SHA-1 (`EVALSHA`), sent whole (`EVAL`) when Redis
 * does not know it (`NOSCRIPT`: a restart or `SCRIPT FLUSH`); `EVAL` loads
 * it for the next calls.
 *
 * @example
 * ```ts ignore
 * import { RedisScript } from "./redis_stream_scripts.ts";
 * declare const client: import("./redis_client.ts").RedisClient;
 * const script = new RedisScript("return ARGV[1]");
 * console.log(await script.run(client, [], ["hi"]));
 * ```
 */
export class RedisScript {
  /** The Lua source. */
  readonly source: string;
  #sha: Promise<string> | undefined;

  /** @param source The Lua source. */
  constructor(source: string) {
    this.source = source;
  }

  /**
   * Runs the script with `keys` and `args`.
   *
   * @throws {RedisError} When the script fails.
   * @throws {RedisConnectionError} When Redis cannot be reached.
   */
  async run(
    client: RedisClient,
    keys: readonly RedisArg[],
    args: readonly RedisArg[],
  ): Promise<RedisReply> {
    const sha = await (this.#sha ??= _sha1(this.source));
    try {
      return await client.command("EVALSHA", sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof RedisError) || err.code !== "NOSCRIPT") throw err;
      return await client.command("EVAL", this.source, keys.length, ...keys, ...args);
    }
  }
}

async function _sha1(source: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(source));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A random epoch candidate: 1 to 2^32 − 1.
 *
 * @example
 * ```ts
 * import { randomEpoch } from "./redis_stream_scripts.ts";
 * console.log(randomEpoch() > 0); // true
 * ```
 */
export function randomEpoch(): number {
  const one = new Uint32Array(1);
  do crypto.getRandomValues(one); while (one[0] === 0);
  return one[0]!;
}
