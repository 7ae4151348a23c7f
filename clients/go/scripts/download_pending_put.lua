-- Coalescing put: keep only the newest not-yet-applied update of a download (its pending update), and
-- make sure exactly one drain job is scheduled for the shard (docs/progress.md has the proof).
-- KEYS[1]: seen:{dl:<s>}:pending:<job>    pending update hash: the newest not-yet-applied update of the download
-- KEYS[2]: seen:{dl:<s>}:pending          zset "<job>:<user>" -> ms of the first pending put
-- KEYS[3]: seen:{dl:<s>}:drain            hash id, at: the shard's scheduled drain job
-- KEYS[4]: seen:{dl:<s>}:progress:<job>   applied state: updates not newer than it are dropped here
-- KEYS[5]: seen:{dl:<s>}:stats            hash of counters
-- ARGV[1]: job id
-- ARGV[2]: user id
-- ARGV[3]: seq
-- ARGV[4]: status
-- ARGV[5]: bytes done
-- ARGV[6]: bytes total
-- ARGV[7]: emitted at, ms (0 = unknown)
-- ARGV[8]: error text ("" = none)
-- ARGV[9]: a fresh drain job id, used when no drain is scheduled
-- ARGV[10]: now, ms
-- ARGV[11]: lease, ms: a drain scheduled longer ago than this is replaced by ARGV[9]
-- ARGV[12]: TTL of the pending update, the pending set and the drain record, ms
-- returns: {code, drain job id or ""}: 0 ignored (not newer than the applied or pending update),
--          1 stored, drain already scheduled; 2 stored, enqueue the returned (new) id;
--          3 stored, the scheduled drain outlived its lease: enqueue the returned (new) id that
--          replaces it; 4 rejected (another user's download)
local TERMINAL = {completed = true, failed = true, cancelled = true}
local function count(field) redis.call('HINCRBY', KEYS[5], field, 1) end

local seq, now = tonumber(ARGV[3]), tonumber(ARGV[10])
if not (seq and now) then return redis.error_reply('ERR download_pending_put: bad seq/now') end

local cur = redis.call('HMGET', KEYS[4], 'seq', 'status', 'user')
if cur[1] then
  if cur[3] and cur[3] ~= ARGV[2] then count('rejected') return {4, ''} end
  if seq <= tonumber(cur[1]) or TERMINAL[cur[2]] then count('ignored') return {0, ''} end
end
local pending = redis.call('HMGET', KEYS[1], 'seq', 'user')
if pending[1] then
  if pending[2] ~= ARGV[2] then count('rejected') return {4, ''} end
  if seq <= tonumber(pending[1]) then count('ignored') return {0, ''} end
end

redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'status', ARGV[4], 'done', ARGV[5], 'total', ARGV[6],
  'emitted', ARGV[7], 'error', ARGV[8], 'user', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[12])
redis.call('ZADD', KEYS[2], 'NX', ARGV[10], ARGV[1] .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[12])

local drain = redis.call('HMGET', KEYS[3], 'id', 'at')
if drain[1] and now - (tonumber(drain[2]) or 0) <= tonumber(ARGV[11]) then
  count('coalesced')
  return {1, drain[1]}
end
redis.call('HSET', KEYS[3], 'id', ARGV[9], 'at', ARGV[10])
redis.call('PEXPIRE', KEYS[3], ARGV[12])
if drain[1] then count('rescheduled') return {3, ARGV[9]} end
count('scheduled')
return {2, ARGV[9]}
