-- KEYS: the sweeps' due index (ZSET sweep id -> time of its next tick)
-- ARGV: now, the score a claimed sweep gets (now + claim seconds), at most this many
-- Returns the sweeps whose tick is due and pushes each ahead, so no two
-- claimers tick the same sweep, and a tick lost with its claimer falls due
-- again once the claim runs out.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
end
return ids
