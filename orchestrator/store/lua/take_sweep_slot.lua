-- KEYS: the sweep's slot holders (SET of run ids), its waiting trials (ZSET run id -> index),
--       its slot limit (STRING: max_concurrent_trials)
-- ARGV: run id, its trial index
-- 1 when the trial holds a slot (it already did, or one was free and no lower
-- trial waits for it); else 0, and the trial waits in index order.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  return 1
end
local limit = tonumber(redis.call('GET', KEYS[3]) or '0')
if redis.call('SCARD', KEYS[1]) < limit then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #first == 0 or first[1] == ARGV[1] or tonumber(first[2]) >= tonumber(ARGV[2]) then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('SADD', KEYS[1], ARGV[1])
    return 1
  end
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 0
