-- KEYS: history hash (tick -> entry JSON), history order (ZSET tick -> tick time)
-- ARGV: tick ISO, entry JSON, tick time, history limit
-- The first entry recorded for a tick wins (a late second claimer changes
-- nothing); only the newest `limit` ticks are kept. Returns 1 if recorded.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  for _, tick in ipairs(oldest) do
    redis.call('ZREM', KEYS[2], tick)
    redis.call('HDEL', KEYS[1], tick)
  end
end
return 1
