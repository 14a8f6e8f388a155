-- KEYS: schedule hash, all schedules (ZSET name -> created_at), due schedules (ZSET name -> next tick)
-- ARGV: name, mode (create | replace | update), definition JSON, next tick ('' = none),
--       keep next tick if unchanged trigger ('1'/'0'), trigger fingerprint, now, suspended ('1'/'0'),
--       by (the caller's key name, '' = unknown): updated_by, and submitted_by of a new schedule
-- create: refuses an existing name; update: refuses a missing one; replace: either.
-- Returns 'exists', 'missing' or 'ok'.
local exists = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[2] == 'create' and exists then return 'exists' end
if ARGV[2] == 'update' and not exists then return 'missing' end
local next_tick = ARGV[4]
-- A change that keeps the trigger keeps the stored next tick, so a tick that
-- fell due a moment ago is not skipped by an edit of the parameters.
if ARGV[5] == '1' and exists and redis.call('HGET', KEYS[1], 'trigger') == ARGV[6] then
  next_tick = redis.call('HGET', KEYS[1], 'next_tick') or ''
end
redis.call('HSET', KEYS[1], 'definition', ARGV[3], 'trigger', ARGV[6], 'next_tick', next_tick,
  'updated_at', ARGV[7])
redis.call('HSETNX', KEYS[1], 'created_at', ARGV[7])
if ARGV[9] ~= '' then
  redis.call('HSETNX', KEYS[1], 'submitted_by', ARGV[9])
  redis.call('HSET', KEYS[1], 'updated_by', ARGV[9])
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[7], ARGV[1])
if ARGV[8] == '1' or next_tick == '' then
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], next_tick, ARGV[1])
end
return 'ok'
