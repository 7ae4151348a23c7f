-- Fixed-window counter: at most `limit` requests per window; a window starts at the first
-- request after the previous one ended. Denied calls write nothing.
-- KEYS[1]: seen:ratelimit:<user>:<action>:fixed   requests counted in the current window
-- ARGV[1]: limit per window (integer >= 1)
-- ARGV[2]: window in milliseconds (integer >= 1)
-- ARGV[3]: cost of this call in requests (integer, 1 <= cost <= limit)
-- returns: array of 4 integers {allowed 1|0, remaining, retry_after_us (0 when allowed),
--          reset_after_us (time until the window ends)}; or the error reply
--          "BADKEY <key> <problem>" when the counter is not an integer below 2^53: it is reset to
--          a used-up window (limit requests, for what is left of the window or a whole one), so
--          the limit holds and the next call is answered normally
local limit = tonumber(ARGV[1])
local cost = tonumber(ARGV[3])
local stored = redis.pcall('GET', KEYS[1])
if type(stored) == 'table' and stored.err and not string.find(stored.err, 'WRONGTYPE', 1, true) then
  return stored  -- not about the key (out of memory, ...): the error as it came
end
local used, problem = 0, nil
if type(stored) == 'table' then
  problem = 'holds a ' .. redis.call('TYPE', KEYS[1])['ok'] .. ', not a request count'
elseif stored then
  used = #stored <= 16 and string.match(stored, '^%d+$') and tonumber(stored)
  if not used or used > 9007199254740991 then
    problem = 'holds "' .. string.sub(stored, 1, 40) .. '", not a request count below 2^53'
  end
end
local left = redis.call('PTTL', KEYS[1])
if problem then
  if left < 1 then left = tonumber(ARGV[2]) end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', left)  -- SET replaces a key of any type
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' ' .. problem .. '; reset to a used-up window of '
    .. left .. ' ms')
end
if left > 0 and used + cost > limit then
  local remaining = limit - used
  if remaining < 0 then
    remaining = 0
  end
  -- the key is gone 1 ms after its PTTL reads 0: waiting retry_after makes the next call pass
  return {0, remaining, (left + 1) * 1000, (left + 1) * 1000}
end
if left > 0 then
  used = redis.call('INCRBY', KEYS[1], cost)
else
  -- no window yet (or a counter without expiry): start one
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
  used = cost
  left = tonumber(ARGV[2])
end
return {1, limit - used, 0, (left + 1) * 1000}
