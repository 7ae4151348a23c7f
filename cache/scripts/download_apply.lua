-- Apply one progress update atomically. Monotonic: an update whose seq is not newer than the
-- stored one is ignored (counted); completed/failed/cancelled are final. Computes the speed as a
-- time-weighted moving average of bytes over the producer's clock, and the ETA; refreshes the
-- TTL; keeps the active index, the per-user index and the shard's event stream.
-- KEYS[1]: seen:{dl:<s>}:progress:<job>   progress hash (fields: docs/wire-format.md)
-- KEYS[2]: seen:{dl:<s>}:active           zset "<job>:<user>" -> last update ms (non-terminal only)
-- KEYS[3]: seen:{dl:<s>}:user:<user>      zset <job> -> last update ms (trimmed to ARGV[4])
-- KEYS[4]: seen:{dl:<s>}:events           stream, one entry per applied update (MAXLEN ~ ARGV[6])
-- KEYS[5]: seen:{dl:<s>}:stats            hash of counters
-- KEYS[6]: seen:{dl:<s>}:pending:<job>    pending update: read and deleted in "pending" mode
-- KEYS[7]: seen:{dl:<s>}:pending          zset of downloads with a pending update: member removed in "pending" mode
-- ARGV[1]: mode: "direct" (the update is ARGV[9..14]) or "pending" (the update is KEYS[6])
-- ARGV[2]: now, ms (updated_at and index scores)
-- ARGV[3]: TTL of a non-terminal download, ms
-- ARGV[4]: TTL of a terminal download and retention of the per-user index, ms
-- ARGV[5]: time constant of the speed moving average, ms
-- ARGV[6]: approximate MAXLEN of the event stream
-- ARGV[7]: job id
-- ARGV[8]: user id
-- ARGV[9]: seq ("direct" mode only: a "pending" call passes ARGV[1..8]); numbers are
--          decimal integer strings (an error reply otherwise)
-- ARGV[10]: status
-- ARGV[11]: bytes done
-- ARGV[12]: bytes total (0 = unknown)
-- ARGV[13]: emitted at, ms (0 = ARGV[2])
-- ARGV[14]: error text ("" = none)
-- returns: integer 1 applied, 0 stale (older seq), 2 duplicate (same seq), 3 final (stored state
--          is terminal), 4 rejected (the download belongs to another user), 5 empty (nothing pending)
local TERMINAL = {completed = true, failed = true, cancelled = true}
local STATUS = {queued = true, downloading = true, paused = true,
                completed = true, failed = true, cancelled = true}

local function I(x) return string.format('%.0f', x) end
local function count(field) redis.call('HINCRBY', KEYS[5], field, 1) end

local now = tonumber(ARGV[2])
local job, user = ARGV[7], ARGV[8]
local member = job .. ':' .. user
-- each field is kept as the text it arrived in (written back unchanged) and as a number
local seq_s, status, done_s, total_s, emitted_s, err

if ARGV[1] == 'pending' then
  local p = redis.call('HMGET', KEYS[6], 'seq', 'status', 'done', 'total', 'emitted', 'error', 'user')
  redis.call('ZREM', KEYS[7], member)
  if not p[1] then return 5 end
  redis.call('DEL', KEYS[6])
  if p[7] ~= user then count('rejected') return 4 end
  seq_s, status, done_s, total_s, emitted_s, err = p[1], p[2], p[3], p[4], p[5], p[6] or ''
else
  seq_s, status, done_s, total_s, emitted_s, err = ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
end
local function int(text) return text and string.match(text, '^%d+$') and tonumber(text) end
local seq, done, total, emitted = int(seq_s), int(done_s), int(total_s), int(emitted_s)
if not (now and seq and done and total and emitted) or not STATUS[status] then
  return redis.error_reply('ERR download_apply: bad update for ' .. job)
end
if emitted <= 0 then emitted, emitted_s = now, ARGV[2] end

local cur = redis.call('HMGET', KEYS[1], 'seq', 'status', 'user', 'done', 'emitted', 'speed', 'sps')
if cur[1] then
  if cur[3] and cur[3] ~= user then count('rejected') return 4 end
  local stored = tonumber(cur[1])
  if seq == stored then count('duplicate') return 2 end
  if seq < stored then count('stale') return 0 end
  if TERMINAL[cur[2]] then count('final') return 3 end
end

-- speed: restart averaging whenever the previous state was not "downloading"
local speed, sps = 0, 0
if status == 'downloading' and cur[1] and cur[2] == 'downloading' then
  local pdone, pt = tonumber(cur[4]) or 0, tonumber(cur[5]) or 0
  local pspeed, psps = tonumber(cur[6]) or 0, tonumber(cur[7]) or 0
  local dt = emitted - pt
  if dt > 0 then
    local inst = math.max(0, done - pdone) * 1000.0 / dt  -- float: no 64-bit overflow in 5.4
    if psps == 0 then
      speed = inst
    else
      local w = 1 - math.exp(-dt / tonumber(ARGV[5]))
      speed = pspeed + w * (inst - pspeed)
    end
    sps = psps + 1
  else
    speed, sps = pspeed, psps
  end
elseif status == 'completed' and cur[1] then
  speed = tonumber(cur[6]) or 0
end

local pct, eta = 0, -1
if status == 'completed' then
  pct, eta = 10000, 0
elseif total > 0 then
  pct = math.floor(math.min(done, total) * 10000.0 / total)
  if status == 'downloading' and speed >= 1 then
    eta = math.ceil(math.max(0, total - done) / math.floor(speed))
  end
end
local speed_s, pct_s, eta_s = I(math.floor(speed)), I(pct), I(eta)

redis.call('HSET', KEYS[1], 'user', user, 'status', status, 'done', done_s, 'total', total_s,
  'pct', pct_s, 'speed', speed_s, 'sps', I(sps), 'eta', eta_s, 'seq', seq_s,
  'updated', ARGV[2], 'emitted', emitted_s, 'error', err)
if TERMINAL[status] then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('ZREM', KEYS[2], member)
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[2], member)
end
redis.call('ZADD', KEYS[3], ARGV[2], job)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. I(now - tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'job', job, 'user', user,
  'status', status, 'done', done_s, 'total', total_s, 'pct', pct_s, 'speed', speed_s,
  'eta', eta_s, 'seq', seq_s, 'updated', ARGV[2], 'error', err)
count('applied')
return 1
