-- KEYS: key hash (by digest), name -> digest, all keys (ZSET name -> created_at), audit stream
-- ARGV: name, digest, scopes, rate, created_at, signing secret, event kind, event data,
--       default webhook subscription (NotifySpec JSON, '' = none)
-- Returns 'exists' when the name is taken, else 'created'.
if redis.call('EXISTS', KEYS[2]) == 1 then return 'exists' end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'scopes', ARGV[3], 'rate', ARGV[4],
           'created_at', ARGV[5], 'last_used_at', '', 'signing_secret', ARGV[6],
           'notify', ARGV[9])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', __EVENTS_MAXLEN__, '*',
           'kind', ARGV[7], 'ts', ARGV[5], 'data', ARGV[8])
return 'created'
