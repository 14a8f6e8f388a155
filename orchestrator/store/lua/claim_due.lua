-- KEYS: due index (ZSET task id -> due time), due messages (HASH task id -> JSON)
-- ARGV: now, at most this many
-- Removes the messages that fell due and returns their JSON: whoever claims a
-- message sends it; no two claimers get the same one.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local claimed = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local message = redis.call('HGET', KEYS[2], id)
  redis.call('HDEL', KEYS[2], id)
  if message then table.insert(claimed, message) end
end
return claimed
