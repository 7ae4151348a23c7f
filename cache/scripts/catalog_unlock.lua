-- Release a catalog fill lock only if this caller still holds it (its lease did not expire
-- and pass to another caller).
-- KEYS[1]: seen:catalog:<kind>:{<tag>}:g<gen>:fill   the fill lock
-- ARGV[1]: the holder's token
-- returns: 1 when released, 0 when the lock was gone or held by someone else
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
