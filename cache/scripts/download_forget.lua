-- Forget one stale download: its progress hash (if still owned by the user and not updated since
-- the cutoff) and its entry in the user's index (if not updated since the cutoff).
-- KEYS[1]: seen:{dl:<s>}:progress:<job>   progress hash
-- KEYS[2]: seen:{dl:<s>}:user:<user>      zset <job> -> last update ms
-- ARGV[1]: job id
-- ARGV[2]: user id
-- ARGV[3]: cutoff, ms
-- returns: 1 when the progress hash was deleted, else 0; or the error reply
--          "BADKEY <key> <problem>" when a key has the wrong type or the hash's "updated" is no
--          time: that key is removed and nothing else is written
local function bad(key, problem) return redis.error_reply('BADKEY ' .. key .. ' ' .. problem) end
local function drop(key, expected)
  local held = redis.call('TYPE', key)['ok']
  redis.call('DEL', key)
  return 'holds a ' .. held .. ', not ' .. expected .. '; removed'
end
local cutoff = tonumber(ARGV[3])
local cur = redis.pcall('HMGET', KEYS[1], 'user', 'updated')
if type(cur) == 'table' and cur.err and not string.find(cur.err, 'WRONGTYPE', 1, true) then
  return cur  -- not about the key (out of memory, ...): the error as it came
end
if cur.err then return bad(KEYS[1], drop(KEYS[1], 'a progress hash')) end
local updated = 0
if cur[2] then
  updated = #cur[2] <= 16 and string.match(cur[2], '^%d+$') and tonumber(cur[2])
  if not updated or updated > 9007199254740991 then
    redis.call('DEL', KEYS[1])
    return bad(KEYS[1], 'field updated is "' .. string.sub(cur[2], 1, 40) .. '", not a time in ms; removed')
  end
end
local score = redis.pcall('ZSCORE', KEYS[2], ARGV[1])
if type(score) == 'table' and score.err and not string.find(score.err, 'WRONGTYPE', 1, true) then
  return score  -- not about the key (out of memory, ...): the error as it came
end
if type(score) == 'table' then return bad(KEYS[2], drop(KEYS[2], "the user's index")) end
if score and tonumber(score) <= cutoff then redis.call('ZREM', KEYS[2], ARGV[1]) end
if cur[1] == ARGV[2] and updated <= cutoff then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
