-- Release a lock, only by the holder of the token (a compare-and-delete).
-- KEYS[1]: seen:lock:{<name>}   the lock; its value is the holder's token
-- ARGV[1]: the token given at acquisition
-- returns: integer; 1 when released, 0 when the lock is not held with this token
--          (expired, taken over or never held: nothing is changed)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
