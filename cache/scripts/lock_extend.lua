-- Renew a held lease, only by the holder of the token: the lease restarts at the new TTL.
-- The one compare-and-renew of every lease (cache/coordination/_lease.py): locks, the catalog
-- fill lock, the maintenance run guard and worker job leases.
-- KEYS[1]: the lease key; its value is the holder's token (seen:lock:{<name>},
--          seen:catalog:<kind>:{<tag>}:g<gen>:fill, arq:in-progress:<job id>)
-- ARGV[1]: the token given at acquisition
-- ARGV[2]: new lease TTL in milliseconds (integer >= 1)
-- returns: integer; 1 when renewed, 0 when the lease is not held with this token
--          (expired, taken over or never held: nothing is changed); or the error reply
--          "BADKEY <key> <problem>" when the key is not a string (refused, left as found)
local held = redis.pcall('GET', KEYS[1])
if type(held) == 'table' and held.err and not string.find(held.err, 'WRONGTYPE', 1, true) then
  return held  -- not about the key (out of memory, ...): the error as it came
end
if type(held) == 'table' then
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds a ' .. redis.call('TYPE', KEYS[1])['ok']
    .. ', not a lease token; not renewed (left as found)')
end
if held == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
