-- Acquire a lock and draw its fencing token in one step (atomic, one {hashtag}).
-- KEYS[1]: seen:lock:{<name>}         the lock; its value is the holder's random token
-- KEYS[2]: seen:lock:{<name>}:fence   fencing counter: never expires, only goes up
-- ARGV[1]: token of this acquisition (random, unique per acquisition)
-- ARGV[2]: lease TTL in milliseconds (integer >= 1)
-- returns: integer; the new fencing token (> 0) when acquired, otherwise minus the current
--          holder's remaining lease in milliseconds (<= -1)
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    -- First use, or the counter was lost with the data (restart without persistence):
    -- start from the server clock in microseconds, above every token handed out before.
    local now = redis.call('TIME')
    redis.call('SET', KEYS[2], now[1] .. string.format('%06d', tonumber(now[2])))
  end
  return redis.call('INCR', KEYS[2])
end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then
  left = 1
end
return -left
