-- KEYS: key hash (by digest), name -> digest, all keys (ZSET), audit stream
-- ARGV: name, digest (as read before), now, event kind, event data
-- Deletes the key only if the name still points at that digest.
-- Returns 'revoked', or 'missing' when the name is gone or points elsewhere.
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 'missing' end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', __EVENTS_MAXLEN__, '*',
           'kind', ARGV[4], 'ts', ARGV[3], 'data', ARGV[5])
return 'revoked'
