-- Take a run guard unless someone else holds it; the same token may take it again (a retry
-- of the same job after its worker died takes over its own stale guard).
-- KEYS[1]: seen:lock:{maintenance:<job name>}   the guard, value = holder token
-- ARGV[1]: holder token (the ARQ job id)
-- ARGV[2]: TTL in milliseconds
-- returns: 1 acquired, 0 held by another token; or the error reply "BADKEY <key> <problem>"
--          when the guard is not a string (refused, left as found)
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err and not string.find(current.err, 'WRONGTYPE', 1, true) then
  return current  -- not about the key (out of memory, ...): the error as it came
end
if type(current) == 'table' then
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds a ' .. redis.call('TYPE', KEYS[1])['ok']
    .. ', not a run guard token; refused (delete it by hand once no run relies on it)')
end
if (not current) or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
