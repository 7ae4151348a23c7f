-- Remove up to ARGV[2] downloads idle since ARGV[1] from a shard's active index, atomically, and
-- return them so the caller can forget their state (bounded work per call: cleanup_stale).
-- KEYS[1]: seen:{dl:<s>}:active   zset "<job>:<user>" -> last update ms
-- ARGV[1]: cutoff, ms: members scored at or below it are stale
-- ARGV[2]: at most this many members (<= 5000)
-- returns: array of the removed members (strings "<job>:<user>")
local unpack = unpack or table.unpack  -- Lua 5.1 (Redis) / 5.4 (Dragonfly)
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #members > 0 then redis.call('ZREM', KEYS[1], unpack(members)) end
return members
