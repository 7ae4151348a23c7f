-- Close a slot whose work is still owed, on behalf of a later run that did that work.
-- KEYS[1]: seen:cron:<job name>:<slot>   the slot's claim: "run:<job id>" or "done:<job id>"
-- ARGV[1]: job id of the run that did the work (its body started after the slot's time)
-- returns: 1 the claim was "run:..." (owed) and is now "done:<ARGV[1]>" with its TTL kept,
--          0 absent or already done (nothing is changed); or the error reply
--          "BADKEY <key> <problem>" when the key holds no claim (left as found)
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err and not string.find(current.err, 'WRONGTYPE', 1, true) then
  return current  -- not about the key (out of memory, ...): the error as it came
end
if type(current) == 'table' then
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds a ' .. redis.call('TYPE', KEYS[1])['ok']
    .. ', not a slot claim; not covered (left as found)')
end
if current and string.sub(current, 1, 4) == 'run:' then
  redis.call('SET', KEYS[1], 'done:' .. ARGV[1], 'KEEPTTL')
  return 1
end
if current and string.sub(current, 1, 5) ~= 'done:' then
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds "' .. string.sub(current, 1, 40)
    .. '", not a slot claim; not covered (left as found)')
end
return 0
