-- KEYS: run, idem (or a placeholder), events, the broker's queue (or a placeholder),
--       then every index (status, runs, name, tags...)
-- ARGV: run_id, data, fingerprint, created_at, has_idem, event kind, event ts, event data,
--       the first task's message ('' for none: the caller sends it)
if ARGV[5] == '1' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return {'idem', existing} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[3] then return {'conflict'} end
  if ARGV[5] == '1' then redis.call('SET', KEYS[2], ARGV[1], 'NX') end
  return {'exists'}
end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', 1, 'fingerprint', ARGV[3])
if ARGV[5] == '1' then redis.call('SET', KEYS[2], ARGV[1]) end
for i = 5, #KEYS do redis.call('ZADD', KEYS[i], ARGV[4], ARGV[1]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', __EVENTS_MAXLEN__, '*',
           'kind', ARGV[6], 'ts', ARGV[7], 'data', ARGV[8])
if ARGV[9] ~= '' then
  -- Created and dispatched at once: the record says dispatched, the task is queued.
  redis.call('LPUSH', KEYS[4], ARGV[9])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', __EVENTS_MAXLEN__, '*',
             'kind', 'dispatched', 'ts', ARGV[7], 'data', '{}')
end
return {'created'}
