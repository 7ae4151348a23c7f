-- Extend a catalog fill lock's lease while its holder is still loading.
-- KEYS[1]: seen:catalog:<kind>:{<tag>}:g<gen>:fill   the fill lock
-- ARGV[1]: the holder's token
-- ARGV[2]: new lease in milliseconds (integer)
-- returns: 1 when extended, 0 when the lock is no longer ours
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
