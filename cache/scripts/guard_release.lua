-- Release a run guard only if the caller still holds it (compare and delete).
-- KEYS[1]: seen:lock:{maintenance:<job name>}   the guard, value = holder token
-- ARGV[1]: holder token
-- returns: 1 released, 0 not held by this token (expired or taken over)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
