-- Make sure a drain job is scheduled for a shard that has pending updates (the sweeper, and a
-- drain job handing on after its time budget). Same scheduling rule as download_pending_put.
-- KEYS[1]: seen:{dl:<s>}:pending   zset of downloads with a pending update
-- KEYS[2]: seen:{dl:<s>}:drain     hash id, at: the shard's scheduled drain job
-- ARGV[1]: a fresh drain job id, used when no drain is scheduled
-- ARGV[2]: now, ms
-- ARGV[3]: lease, ms: a drain scheduled longer ago is replaced by ARGV[1] (0 = replace it now)
-- ARGV[4]: TTL of the drain record, ms
-- returns: {code, drain job id or ""}: 0 nothing pending; 1 a drain is scheduled (within its
--          lease); 2 enqueue the returned (new) id; 3 the scheduled drain outlived its lease:
--          enqueue the returned (new) id that replaces it
if redis.call('ZCARD', KEYS[1]) == 0 then return {0, ''} end
local drain = redis.call('HMGET', KEYS[2], 'id', 'at')
if drain[1] and tonumber(ARGV[2]) - (tonumber(drain[2]) or 0) < tonumber(ARGV[3]) then
  return {1, drain[1]}
end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'at', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if drain[1] then return {3, ARGV[1]} end
return {2, ARGV[1]}
