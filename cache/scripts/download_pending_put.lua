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
--          replaces it; 4 rejected (another user's download); or the error reply
--          "BADKEY <key> <problem>" when a key it reads has the wrong type or an unusable value:
--          the update is not stored, nothing else is written and the bad key is removed
--          (docs/dragonfly.md). seq and now must be integers below 2^53 and the status known (an
--          error reply otherwise); the other numbers are checked when the update is applied.
local TERMINAL = {completed = true, failed = true, cancelled = true}
local STATUS = {queued = true, downloading = true, paused = true,
                completed = true, failed = true, cancelled = true}
local MAX = 9007199254740991  -- 2^53 - 1

-- an integer in [0, 2^53 - 1], else nil
local function num(text)
  local n = text and tonumber(text)
  if n and n >= 0 and n <= MAX and n % 1 == 0 then return n end
  return nil
end
-- the error reply for a bad key; with `expected`, the key has the wrong type and is removed
local function bad(key, problem, expected)
  if expected then
    problem = 'holds a ' .. redis.call('TYPE', key)['ok'] .. ', not ' .. expected .. '; removed' .. problem
    redis.call('DEL', key)
  end
  return redis.error_reply('BADKEY ' .. key .. ' ' .. problem)
end
-- a pcall'd command's error: a key of the wrong type is a bad key (removed); any other error
-- (out of memory, ...) is no fault of the key and is returned as it came
local function failed(reply, key, expected, problem)
  if string.find(reply.err, 'WRONGTYPE', 1, true) then return bad(key, problem or '', expected) end
  return reply
end
-- count an outcome: the first write of every path, so a failure here has written nothing;
-- returns the error reply of a bad counters hash (removed) or counter (reset)
local function count(field)
  local reply = redis.pcall('HINCRBY', KEYS[5], field, 1)
  if type(reply) ~= 'table' then return nil end
  if not (string.find(reply.err, 'not an integer', 1, true) or string.find(reply.err, 'overflow', 1, true)) then
    return failed(reply, KEYS[5], 'a hash of counters')
  end
  local held = redis.call('HGET', KEYS[5], field) or ''
  redis.call('HDEL', KEYS[5], field)
  return bad(KEYS[5], 'field ' .. field .. ' is "' .. string.sub(held, 1, 40)
    .. '", not a counter below 2^63 - 1; reset')
end

-- the update (the apply script checks the exact form of its numbers when it applies it)
local seq, now = num(ARGV[3]), num(ARGV[10])
if not (seq and now and STATUS[ARGV[4]]) then
  return redis.error_reply('ERR download_pending_put: bad update for ' .. ARGV[1])
end

-- 1. read and check every key before the first write
local cur = redis.pcall('HMGET', KEYS[4], 'seq', 'status', 'user')
if cur.err then return failed(cur, KEYS[4], 'a progress hash') end
local applied = num(cur[1])
if cur[1] and not (applied and STATUS[cur[2]]) then
  redis.call('DEL', KEYS[4])
  return bad(KEYS[4], 'has seq "' .. string.sub(cur[1], 1, 40) .. '" and status "'
    .. string.sub(cur[2] or '', 1, 40) .. '", not an integer in [0, 2^53 - 1] and a status; removed')
end
local pending = redis.pcall('HMGET', KEYS[1], 'seq', 'user')
if pending.err then return failed(pending, KEYS[1], 'a pending update') end
local waiting = num(pending[1])
if pending[1] and not waiting then
  redis.call('DEL', KEYS[1])
  return bad(KEYS[1], 'field seq is "' .. string.sub(pending[1], 1, 40)
    .. '", not an integer in [0, 2^53 - 1]; removed')
end
local drain = redis.pcall('HMGET', KEYS[3], 'id', 'at')
if drain.err then return failed(drain, KEYS[3], 'a drain record') end
local at = num(drain[2])
if drain[2] and not at then
  redis.call('DEL', KEYS[3])
  return bad(KEYS[3], 'field at is "' .. string.sub(drain[2], 1, 40) .. '", not a time in ms; removed')
end
at = at or 0

-- 2. ignored or rejected: only counted
local skip
if applied then
  if cur[3] and cur[3] ~= ARGV[2] then skip = 'rejected'
  elseif seq <= applied or TERMINAL[cur[2]] then skip = 'ignored' end
end
if not skip and waiting then
  if pending[2] ~= ARGV[2] then skip = 'rejected'
  elseif seq <= waiting then skip = 'ignored' end
end
if skip then
  return count(skip) or {skip == 'rejected' and 4 or 0, ''}
end

-- 3. stored: count first, then the pending set (a write that can still fail, undoing the count)
local code, field = 2, 'scheduled'
if drain[1] and now - at <= tonumber(ARGV[11]) then
  code, field = 1, 'coalesced'
elseif drain[1] then
  code, field = 3, 'rescheduled'
end
local refused = count(field)
if refused then return refused end
local listed = redis.pcall('ZADD', KEYS[2], 'NX', ARGV[10], ARGV[1] .. ':' .. ARGV[2])
if type(listed) == 'table' then
  redis.call('HINCRBY', KEYS[5], field, -1)
  return failed(listed, KEYS[2], 'a pending set', ' (its downloads come back with their next put)')
end
redis.call('PEXPIRE', KEYS[2], ARGV[12])
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'status', ARGV[4], 'done', ARGV[5], 'total', ARGV[6],
  'emitted', ARGV[7], 'error', ARGV[8], 'user', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[12])
if code == 1 then return {1, drain[1]} end
redis.call('HSET', KEYS[3], 'id', ARGV[9], 'at', ARGV[10])
redis.call('PEXPIRE', KEYS[3], ARGV[12])
return {code, ARGV[9]}
