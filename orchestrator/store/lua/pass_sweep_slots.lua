-- KEYS: the sweep's slot holders (SET), its waiting trials (ZSET run id -> index), its limit
-- ARGV: run ids that ended (their slots are freed; they no longer wait)
-- Frees the ended trials' slots, then gives free slots to the lowest waiting
-- trials; returns the run ids just given one (their waits are brought forward).
for i = 1, #ARGV do
  redis.call('SREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
end
local limit = tonumber(redis.call('GET', KEYS[3]) or '0')
local granted = {}
while redis.call('SCARD', KEYS[1]) < limit do
  local first = redis.call('ZPOPMIN', KEYS[2])
  if #first == 0 then break end
  redis.call('SADD', KEYS[1], first[1])
  table.insert(granted, first[1])
end
return granted
