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
--          decimal integer strings below 2^53 (an error reply otherwise)
-- ARGV[10]: status
-- ARGV[11]: bytes done
-- ARGV[12]: bytes total (0 = unknown)
-- ARGV[13]: emitted at, ms (0 = ARGV[2])
-- ARGV[14]: error text ("" = none)
-- returns: integer 1 applied, 0 stale (older seq), 2 duplicate (same seq), 3 final (stored state
--          is terminal), 4 rejected (the download belongs to another user), 5 empty (nothing pending);
--          or the error reply "BADKEY <key> <problem>" when a key it reads has the wrong type or an
--          unusable value: nothing else is written, the bad key is removed (a bad pending update
--          is consumed; any other leaves the pending update for the next call), docs/dragonfly.md
local TERMINAL = {completed = true, failed = true, cancelled = true}
local STATUS = {queued = true, downloading = true, paused = true,
                completed = true, failed = true, cancelled = true}
local MAX = 9007199254740991  -- 2^53 - 1: every number we store is below it

local function I(x) return string.format('%.0f', x) end
-- a stored number that is only computed with: any integer in [0, 2^53 - 1], else nil
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

local now = tonumber(ARGV[2])
if not now then return redis.error_reply('ERR download_apply: bad now') end
local job, user = ARGV[7], ARGV[8]
local member = job .. ':' .. user
local pending = ARGV[1] == 'pending'
-- each field is kept as the text it arrived in (written back unchanged) and as a number
local seq_s, status, done_s, total_s, emitted_s, err, owner

-- 1. read and check every key of this call before the first write
local listed
if pending then
  local p = redis.pcall('HMGET', KEYS[6], 'seq', 'status', 'done', 'total', 'emitted', 'error', 'user')
  listed = redis.pcall('ZSCORE', KEYS[7], member)
  if type(listed) == 'table' then
    -- keep this download listed: the others come back with their next put
    local reply = failed(listed, KEYS[7], 'a pending set', ' (this download is listed again)')
    if reply ~= listed then redis.call('ZADD', KEYS[7], now, member) end
    return reply
  end
  if p.err then
    if not string.find(p.err, 'WRONGTYPE', 1, true) then return p end
    if listed then redis.call('ZREM', KEYS[7], member) end
    return bad(KEYS[6], '', 'a pending update')
  end
  if not p[1] then
    if listed then redis.call('ZREM', KEYS[7], member) end
    return 5
  end
  seq_s, status, done_s, total_s, emitted_s, err, owner = p[1], p[2], p[3], p[4], p[5], p[6] or '', p[7]
else
  seq_s, status, done_s, total_s, emitted_s, err = ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
end
-- the update's numbers are written back as the text they came in: decimal digits below 2^53
local seq, done, total, emitted
if type(seq_s) == 'string' and type(done_s) == 'string' and type(total_s) == 'string'
    and type(emitted_s) == 'string'
    and string.find(seq_s .. ' ' .. done_s .. ' ' .. total_s .. ' ' .. emitted_s, '^%d+ %d+ %d+ %d+$') then
  seq, done, total, emitted = tonumber(seq_s), tonumber(done_s), tonumber(total_s), tonumber(emitted_s)
  if math.max(seq, done, total, emitted) > MAX then seq = nil end
end
if not seq or not STATUS[status] then
  if not pending then return redis.error_reply('ERR download_apply: bad update for ' .. job) end
  -- an unusable pending update is consumed: it can never be applied
  redis.call('DEL', KEYS[6])
  if listed then redis.call('ZREM', KEYS[7], member) end
  return bad(KEYS[6], 'holds an unusable update (seq "' .. string.sub(seq_s or '', 1, 40)
    .. '", status "' .. string.sub(status or '', 1, 40) .. '", done "' .. string.sub(done_s or '', 1, 40)
    .. '", total "' .. string.sub(total_s or '', 1, 40) .. '", emitted "'
    .. string.sub(emitted_s or '', 1, 40) .. '"); removed')
end
if emitted <= 0 then emitted, emitted_s = now, ARGV[2] end

local cur = redis.pcall('HMGET', KEYS[1], 'seq', 'status', 'user', 'done', 'emitted', 'speed', 'sps')
if cur.err then return failed(cur, KEYS[1], 'a progress hash') end
local stored, pdone, pt, pspeed, psps = num(cur[1]), 0, 0, 0, 0
if cur[1] then
  pdone, pt, pspeed, psps = num(cur[4] or '0'), num(cur[5] or '0'), num(cur[6] or '0'), num(cur[7] or '0')
  if not (stored and pdone and pt and pspeed and psps and STATUS[cur[2]]) then
    redis.call('DEL', KEYS[1])
    local shown = {}
    for i, name in ipairs({'seq', 'status', 'done', 'emitted', 'speed', 'sps'}) do
      shown[i] = name .. ' "' .. string.sub(cur[({1, 2, 4, 5, 6, 7})[i]] or '', 1, 40) .. '"'
    end
    return bad(KEYS[1], 'has ' .. table.concat(shown, ', ')
      .. ': not integers in [0, 2^53 - 1] and a status; removed')
  end
end

-- 2. the outcome; an update that is not applied only counts it (and consumes a pending one)
local outcome
if pending and owner ~= user then
  outcome = 4
elseif stored then
  if cur[3] and cur[3] ~= user then outcome = 4
  elseif seq == stored then outcome = 2
  elseif seq < stored then outcome = 0
  elseif TERMINAL[cur[2]] then outcome = 3 end
end
if outcome then
  local fields = {[0] = 'stale', [2] = 'duplicate', [3] = 'final', [4] = 'rejected'}
  local refused = count(fields[outcome])
  if refused then return refused end
  if pending then
    redis.call('DEL', KEYS[6])
    if listed then redis.call('ZREM', KEYS[7], member) end
  end
  return outcome
end

-- speed: restart averaging whenever the previous state was not "downloading"
local speed, sps = 0, 0
if status == 'downloading' and stored and cur[2] == 'downloading' then
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
elseif status == 'completed' and stored then
  speed = pspeed
end
speed = math.min(speed, MAX)

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

-- 3. the writes that can still fail (a key of the wrong type) come first, each undoing the
-- ones before it; the active index is checked by a read, as its old score cannot be restored
local active = redis.pcall('ZSCORE', KEYS[2], member)
if type(active) == 'table' then return failed(active, KEYS[2], 'the active index') end
local refused = count('applied')
if refused then return refused end
local id = redis.pcall('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'job', job, 'user', user,
  'status', status, 'done', done_s, 'total', total_s, 'pct', pct_s, 'speed', speed_s,
  'eta', eta_s, 'seq', seq_s, 'updated', ARGV[2], 'error', err)
if type(id) == 'table' then
  redis.call('HINCRBY', KEYS[5], 'applied', -1)
  return failed(id, KEYS[4], 'an event stream')
end
local indexed = redis.pcall('ZADD', KEYS[3], ARGV[2], job)
if type(indexed) == 'table' then
  redis.call('XDEL', KEYS[4], id)
  redis.call('HINCRBY', KEYS[5], 'applied', -1)
  return failed(indexed, KEYS[3], "the user's index")
end

-- 4. the writes that cannot fail: every key's type is known now
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. I(now - tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[1], 'user', user, 'status', status, 'done', done_s, 'total', total_s,
  'pct', pct_s, 'speed', speed_s, 'sps', I(sps), 'eta', eta_s, 'seq', seq_s,
  'updated', ARGV[2], 'emitted', emitted_s, 'error', err)
if TERMINAL[status] then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  if active then redis.call('ZREM', KEYS[2], member) end
else
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[2], member)
end
if pending then
  redis.call('DEL', KEYS[6])
  if listed then redis.call('ZREM', KEYS[7], member) end
end
return 1
