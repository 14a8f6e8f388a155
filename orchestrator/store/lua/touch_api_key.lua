-- KEYS: key hash (by digest)
-- ARGV: now
-- The key's name, scopes, rate and default webhook subscription, recording its use; nil when there is no such key
-- (never created, or revoked). One round trip per request, and no cache to outlive a revoke.
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1])
return redis.call('HMGET', KEYS[1], 'name', 'scopes', 'rate', 'notify')
