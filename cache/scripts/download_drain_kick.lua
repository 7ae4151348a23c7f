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
--          enqueue the returned (new) id that replaces it; or the error reply
--          "BADKEY <key> <problem>" when the pending set or the drain record has the wrong type
--          or an unusable time: that key is removed and nothing else is written
local function bad(key, problem) return redis.error_reply('BADKEY ' .. key .. ' ' .. problem) end
local function drop(key, expected)
  local held = redis.call('TYPE', key)['ok']
  redis.call('DEL', key)
  return 'holds a ' .. held .. ', not ' .. expected .. '; removed'
end
local waiting = redis.pcall('ZCARD', KEYS[1])
if type(waiting) == 'table' and waiting.err and not string.find(waiting.err, 'WRONGTYPE', 1, true) then
  return waiting  -- not about the key (out of memory, ...): the error as it came
end
if type(waiting) == 'table' then
  return bad(KEYS[1], drop(KEYS[1], 'a pending set') .. ' (its downloads come back with their next put)')
end
if waiting == 0 then return {0, ''} end
local drain = redis.pcall('HMGET', KEYS[2], 'id', 'at')
if type(drain) == 'table' and drain.err and not string.find(drain.err, 'WRONGTYPE', 1, true) then
  return drain  -- not about the key (out of memory, ...): the error as it came
end
if drain.err then return bad(KEYS[2], drop(KEYS[2], 'a drain record')) end
local at = 0
if drain[2] then
  at = #drain[2] <= 16 and string.match(drain[2], '^%d+$') and tonumber(drain[2])
  if not at or at > 9007199254740991 then
    redis.call('DEL', KEYS[2])
    return bad(KEYS[2], 'field at is "' .. string.sub(drain[2], 1, 40) .. '", not a time in ms; removed')
  end
end
if drain[1] and tonumber(ARGV[2]) - at < tonumber(ARGV[3]) then
  return {1, drain[1]}
end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'at', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if drain[1] then return {3, ARGV[1]} end
return {2, ARGV[1]}
