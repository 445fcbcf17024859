/**
 * The fleet's Lua scripts: each runs atomically in Redis, on Redis's clock (TIME), so replicas whose clocks
 * differ still agree on when a lease, a pause or a pacing interval ends.
 *
 * Keys per (account, mailbox): `lease:<account>/<mailbox>` a sorted set of leases (member: the holder's
 * lease id, which starts with its replica name; score: when it expires), `pause:…` present while the
 * mailbox is paused (PX expiry), `pace:…` the earliest time the next attempt may start (pacing).
 */

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * KEYS: lease, pause, pace. ARGV: limit, lease ms, lease id, pacing interval ms (0 = none).
 * Returns {1, 0, 'ok'} or {0, ms to wait, 'paused' | 'full' | 'paced'}; 'full' waits for the soonest expiry.
 */
export const ACQUIRE = `${NOW}
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 then return {0, pttl, 'paused'} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(1, tonumber(first[2]) - now), 'full'}
end
local interval = tonumber(ARGV[4])
if interval > 0 then
  local nxt = tonumber(redis.call('GET', KEYS[3]) or '0')
  if nxt > now then return {0, nxt - now, 'paced'} end
  redis.call('SET', KEYS[3], now + interval, 'PX', math.ceil(interval) + 60000)
end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
redis.call('PEXPIRE', KEYS[1], lease * 2)
return {1, 0, 'ok'}`;

/** KEYS: lease. ARGV: lease ms, lease ids…: each held lease expires a lease time from now (added again if it had gone). */
export const RENEW = `${NOW}
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + lease, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], lease * 2)
return #ARGV - 1`;

/** KEYS: pause. ARGV: pause ms, replica. Sets the pause unless a longer one is already set. */
export const PAUSE = `local cur = redis.call('PTTL', KEYS[1])
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1]) return 1 end
return 0`;
