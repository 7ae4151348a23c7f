-- Remove up to ARGV[2] downloads idle since ARGV[1] from a shard's active index, atomically, and
-- return them so the caller can forget their state (bounded work per call: cleanup_stale).
-- KEYS[1]: seen:{dl:<s>}:active   zset "<job>:<user>" -> last update ms
-- ARGV[1]: cutoff, ms: members scored at or below it are stale
-- ARGV[2]: at most this many members (<= 5000)
-- returns: array of the removed members (strings "<job>:<user>"); or the error reply
--          "BADKEY <key> <problem>" when the index is not a sorted set (it is removed: active
--          downloads enter it again with their next update)
local unpack = unpack or table.unpack  -- Lua 5.1 (Redis) / 5.4 (Dragonfly)
local members = redis.pcall('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if type(members) == 'table' and members.err and not string.find(members.err, 'WRONGTYPE', 1, true) then
  return members  -- not about the key (out of memory, ...): the error as it came
end
if members.err then
  local held = redis.call('TYPE', KEYS[1])['ok']
  redis.call('DEL', KEYS[1])
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds a ' .. held .. ', not the active index; removed')
end
if #members > 0 then redis.call('ZREM', KEYS[1], unpack(members)) end
return members
