-- Acquire a lock and draw its fencing token in one step (atomic, one {hashtag}).
-- KEYS[1]: seen:lock:{<name>}         the lock; its value is the holder's random token
-- KEYS[2]: seen:lock:{<name>}:fence   fencing counter: never expires, only goes up
-- ARGV[1]: token of this acquisition (random, unique per acquisition)
-- ARGV[2]: lease TTL in milliseconds (integer >= 1)
-- returns: integer; the new fencing token (> 0) when acquired, otherwise minus the current
--          holder's remaining lease in milliseconds (<= -1); or the error reply
--          "BADKEY <key> <problem>" when the lock is not a string or the counter is not an
--          integer below 2^53: refused, nothing is written (neither is deleted: that could let
--          two holders in, or hand out a fence again), docs/coordination.md
local function bad(key, problem) return redis.error_reply('BADKEY ' .. key .. ' ' .. problem) end
local counter = redis.pcall('GET', KEYS[2])
if type(counter) == 'table' and counter.err and not string.find(counter.err, 'WRONGTYPE', 1, true) then
  return counter  -- not about the key (out of memory, ...): the error as it came
end
if type(counter) == 'table' then
  return bad(KEYS[2], 'holds a ' .. redis.call('TYPE', KEYS[2])['ok'] .. ', not a fencing counter;'
    .. ' refused (set it by hand to at least the highest fence handed out)')
end
local fence = 0
if counter then
  fence = #counter <= 16 and string.match(counter, '^%d+$') and tonumber(counter)
  if not fence or fence >= 9007199254740991 then
    return bad(KEYS[2], 'holds "' .. string.sub(counter, 1, 40) .. '", not an integer fence below'
      .. ' 2^53 - 1; refused (set it by hand to at least the highest fence handed out)')
  end
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  -- Never below the server clock in microseconds: a counter that was lost (restart without
  -- persistence) or is behind (failover to a replica that missed the last increments) would
  -- otherwise hand out tokens again; the clock has moved past them by the time a failover
  -- is over.
  local now = redis.call('TIME')
  local floor = tonumber(now[1] .. string.format('%06d', tonumber(now[2])))
  fence = fence + 1
  if fence < floor then fence = floor end
  redis.call('SET', KEYS[2], string.format('%d', fence))
  return fence
end
if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then
  return bad(KEYS[1], 'holds a ' .. redis.call('TYPE', KEYS[1])['ok'] .. ', not a lock token;'
    .. ' refused (delete it by hand once no process relies on it)')
end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then
  left = 1
end
return -left
