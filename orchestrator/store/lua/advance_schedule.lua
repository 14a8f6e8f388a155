-- KEYS: schedule hash, due schedules (ZSET name -> next tick)
-- ARGV: name, the tick this claimer processed, the next tick ('' = none left)
-- Moves the schedule past the processed tick, only if nobody moved it since
-- (an edit, another claimer after this one's claim expired). Returns 1 if moved.
if redis.call('HGET', KEYS[1], 'next_tick') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'next_tick', ARGV[3])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  -- XX: a paused schedule (not in the due index) stays out of it.
  redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
end
return 1
