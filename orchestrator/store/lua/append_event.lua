-- KEYS: run, events. ARGV: kind, ts, data. Refuses events of unknown runs.
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', __EVENTS_MAXLEN__, '*',
                  'kind', ARGV[1], 'ts', ARGV[2], 'data', ARGV[3])
