-- Mark a claimed slot as done, so a late duplicate of the same cron id is skipped.
-- KEYS[1]: seen:cron:<job name>:<slot>   the slot's claim
-- ARGV[1]: job id that holds the claim
-- returns: 1 marked done, 0 the claim is not ours (expired or taken over); or the error reply
--          "BADKEY <key> <problem>" when the key holds no claim (left as found)
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err and not string.find(current.err, 'WRONGTYPE', 1, true) then
  return current  -- not about the key (out of memory, ...): the error as it came
end
if type(current) == 'table' then
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds a ' .. redis.call('TYPE', KEYS[1])['ok']
    .. ', not a slot claim; not finished (left as found)')
end
if current == 'run:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'done:' .. ARGV[1], 'KEEPTTL')
  return 1
end
if current and not (string.sub(current, 1, 4) == 'run:' or string.sub(current, 1, 5) == 'done:') then
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds "' .. string.sub(current, 1, 40)
    .. '", not a slot claim; not finished (left as found)')
end
return 0
