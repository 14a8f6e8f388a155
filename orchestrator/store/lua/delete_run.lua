-- Deletes one ended run whose retention has passed: record, events, lease, its
-- idempotency key (when it still names this run) and its index entries, all or
-- nothing. Never a run that is not terminal, changed since it was read, or busy.
-- KEYS: run, events, lock, idempotency key (or '-'), then every index the run may be in
-- ARGV: run_id, version read ('' when the record was already gone), cutoff (epoch s),
--       then the terminal statuses
local version = redis.call('HGET', KEYS[1], 'version')
if ARGV[2] == '' then
  -- Index entries left without a record: only cleaned while there is still none.
  if version then return 'kept' end
  for i = 5, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
  redis.call('DEL', KEYS[2])
  return 'gone'
end
if version ~= ARGV[2] then return 'changed' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'busy' end
local record = cjson.decode(redis.call('HGET', KEYS[1], 'data'))
local terminal = false
for i = 4, #ARGV do
  if record.status == ARGV[i] then terminal = true end
end
local finished = record.finished_at
if type(finished) ~= 'number' then finished = record.updated_at end
if not terminal or type(finished) ~= 'number' or finished >= tonumber(ARGV[3]) then
  return 'kept'
end
redis.call('DEL', KEYS[1], KEYS[2])
if KEYS[4] ~= '-' and redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
for i = 5, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 'deleted'
