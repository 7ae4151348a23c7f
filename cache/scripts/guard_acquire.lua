-- Take a run guard unless someone else holds it; the same token may take it again (a retry
-- of the same job after its worker died takes over its own stale guard).
-- KEYS[1]: seen:lock:{maintenance:<job name>}   the guard, value = holder token
-- ARGV[1]: holder token (the ARQ job id)
-- ARGV[2]: TTL in milliseconds
-- returns: 1 acquired, 0 held by another token
local current = redis.call('GET', KEYS[1])
if (not current) or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
