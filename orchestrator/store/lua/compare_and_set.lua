-- KEYS: run, events, old status index, new status index
-- ARGV: expected version, data, run_id, created_at, then (kind, ts, data) per event
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return -1 end
if version ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', tonumber(version) + 1)
if KEYS[3] ~= KEYS[4] then
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
end
for i = 5, #ARGV, 3 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', __EVENTS_MAXLEN__, '*',
             'kind', ARGV[i], 'ts', ARGV[i + 1], 'data', ARGV[i + 2])
end
return 1
