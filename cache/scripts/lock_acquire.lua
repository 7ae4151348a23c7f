-- Acquire a lock and draw its fencing token in one step (atomic, one {hashtag}).
-- KEYS[1]: seen:lock:{<name>}         the lock; its value is the holder's random token
-- KEYS[2]: seen:lock:{<name>}:fence   fencing counter: never expires, only goes up
-- ARGV[1]: token of this acquisition (random, unique per acquisition)
-- ARGV[2]: lease TTL in milliseconds (integer >= 1)
-- returns: integer; the new fencing token (> 0) when acquired, otherwise minus the current
--          holder's remaining lease in milliseconds (<= -1)
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local fence = redis.call('INCR', KEYS[2])
  -- Never below the server clock in microseconds: a counter that was lost (restart without
  -- persistence) or is behind (failover to a replica that missed the last increments) would
  -- otherwise hand out tokens again; the clock has moved past them by the time a failover
  -- is over.
  local now = redis.call('TIME')
  local floor = now[1] .. string.format('%06d', tonumber(now[2]))
  if fence < tonumber(floor) then
    redis.call('SET', KEYS[2], floor)
    return redis.call('INCRBY', KEYS[2], 0)
  end
  return fence
end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then
  left = 1
end
return -left
