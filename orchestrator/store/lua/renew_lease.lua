-- KEYS: lease. ARGV: owner token, ttl in ms. 1 while the owner still holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
