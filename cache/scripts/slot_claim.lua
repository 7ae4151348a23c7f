-- Claim one scheduled slot of a periodic job for one ARQ job id (exactly once per fleet).
-- KEYS[1]: seen:cron:<job name>:<slot>   the slot's claim: "run:<job id>" or "done:<job id>"
-- ARGV[1]: job id (ARQ's cron id "<name>:<scheduled ms>")
-- ARGV[2]: claim TTL in milliseconds (at least the period)
-- returns: 1 claimed now, 2 already claimed by this job id and not finished (a retry after a
--          crash or cancel resumes it), 0 the slot ran or is running under another job id;
--          or the error reply "BADKEY <key> <problem>" when the key holds no claim (refused and
--          left as found: whether the slot ran cannot be told, so it is not run again)
local current = redis.pcall('GET', KEYS[1])
if type(current) == 'table' and current.err and not string.find(current.err, 'WRONGTYPE', 1, true) then
  return current  -- not about the key (out of memory, ...): the error as it came
end
if type(current) == 'table' then
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds a ' .. redis.call('TYPE', KEYS[1])['ok']
    .. ', not a slot claim; refused (left as found)')
end
if not current then
  redis.call('SET', KEYS[1], 'run:' .. ARGV[1], 'PX', ARGV[2])
  return 1
end
if current == 'run:' .. ARGV[1] then
  return 2
end
if not (string.sub(current, 1, 4) == 'run:' or string.sub(current, 1, 5) == 'done:') then
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds "' .. string.sub(current, 1, 40)
    .. '", not a slot claim; refused (left as found)')
end
return 0
