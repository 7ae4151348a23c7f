-- Renew a held lease, only by the holder of the token: the lease restarts at the new TTL.
-- KEYS[1]: seen:lock:{<name>}   the lock; its value is the holder's token
-- ARGV[1]: the token given at acquisition
-- ARGV[2]: new lease TTL in milliseconds (integer >= 1)
-- returns: integer; 1 when renewed, 0 when the lock is not held with this token
--          (expired, taken over or never held: nothing is changed)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
