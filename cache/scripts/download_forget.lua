-- Forget one stale download: its progress hash (if still owned by the user and not updated since
-- the cutoff) and its entry in the user's index (if not updated since the cutoff).
-- KEYS[1]: seen:{dl:<s>}:progress:<job>   progress hash
-- KEYS[2]: seen:{dl:<s>}:user:<user>      zset <job> -> last update ms
-- ARGV[1]: job id
-- ARGV[2]: user id
-- ARGV[3]: cutoff, ms
-- returns: 1 when the progress hash was deleted, else 0
local cutoff = tonumber(ARGV[3])
local score = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or '')
if score and score <= cutoff then redis.call('ZREM', KEYS[2], ARGV[1]) end
local cur = redis.call('HMGET', KEYS[1], 'user', 'updated')
if cur[1] == ARGV[2] and (tonumber(cur[2]) or 0) <= cutoff then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
