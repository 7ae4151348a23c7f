-- GCRA rate limiter (the algorithm of redis-cell's CL.THROTTLE) in integer microseconds.
-- The whole state is one integer, the theoretical arrival time (TAT). Time comes from the
-- server (TIME), so API servers with skewed clocks share one timeline. Denied calls write
-- nothing; an allowed call stores the TAT with a TTL that ends when the limiter is full again.
-- KEYS[1]: seen:ratelimit:<user>:<action>   TAT, microseconds since the epoch
-- ARGV[1]: emission interval in microseconds (window / limit, rounded up; integer >= 1)
-- ARGV[2]: burst: requests allowed at once after idling (integer >= 1)
-- ARGV[3]: cost of this call in requests (integer, 1 <= cost <= burst)
-- returns: array of 4 integers {allowed 1|0, remaining, retry_after_us (0 when allowed),
--          reset_after_us (time until the full burst is available again)}; or the error reply
--          "BADKEY <key> <problem>" when the TAT is not an integer time at most 2^45 us (about
--          407 days, beyond any window) ahead of the server clock: it is reset to a full
--          limiter (TAT = now + burst * interval), so the limit holds and the next call is
--          answered normally
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tolerance = interval * burst
local stored = redis.pcall('GET', KEYS[1])
if type(stored) == 'table' and stored.err and not string.find(stored.err, 'WRONGTYPE', 1, true) then
  return stored  -- not about the key (out of memory, ...): the error as it came
end
local tat, problem = now, nil
if type(stored) == 'table' then
  problem = 'holds a ' .. redis.call('TYPE', KEYS[1])['ok'] .. ', not a time in microseconds'
elseif stored then
  tat = #stored <= 16 and string.match(stored, '^%d+$') and tonumber(stored)
  if not tat or tat > now + 35184372088832 then
    problem = 'holds "' .. string.sub(stored, 1, 40) .. '", not a time in microseconds'
  end
end
if problem then
  tat = now + tolerance
  local ttl_ms = math.floor(tolerance / 1000) + 2
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', ttl_ms))
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' ' .. problem .. '; reset to a full limiter')
end
if tat < now then
  tat = now
end
local allow_at = tat + interval * cost - tolerance
local allowed = 0
local retry_after = 0
if now >= allow_at then
  allowed = 1
  tat = tat + interval * cost
  -- +2 ms: the key must not expire before the TAT is reached (the server's expiry clock
  -- is in whole milliseconds and frozen at the start of the script)
  local ttl_ms = math.floor((tat - now) / 1000) + 2
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', ttl_ms))
else
  retry_after = allow_at - now
end
local remaining = math.floor((now + tolerance - tat) / interval)
if remaining < 0 then
  remaining = 0
end
return {allowed, remaining, retry_after, tat - now}
