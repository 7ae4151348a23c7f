-- Claim a batch of due jobs of one queue shard in one call (worker/engine/claim.py).
-- KEYS[1]: the shard's queue         sorted set of job ids scored by due time (ms)
-- KEYS[2]: the shard's abort set     sorted set of ids to abort (ARQ's arq:abort)
-- KEYS[3]: lease of id i             <in-progress prefix><id>, written with the claim's token
-- KEYS[4]: job record of id i        <job prefix><id> (read)
-- KEYS[5]: try counter of id i       <retry prefix><id> (incremented)
-- repeat: KEYS[3..5] for each id, in the order of the ids in ARGV
-- ARGV[1]: now, ms since the epoch (integer)
-- ARGV[2]: lease in ms (integer >= 1)
-- ARGV[3]: try counter TTL in seconds (ARQ: 88400)
-- ARGV[4]: 1 when aborts are honoured, else 0
-- ARGV[5]: id i (then ARGV[6]: the token of its lease; two arguments per id)
-- returns: {note, then 6 values per id: status, score, record, try, aborted, problem}
--   note: "" or why the abort set was removed (it was not a sorted set)
--   status 0: not claimed (not queued, not due yet, or held by another run): nothing changed
--   status 1: claimed: score (string, as stored), record ("" when missing: ARQ fails such a
--             job as expired), try (after the increment), aborted (1 when it was in the abort
--             set: it is to fail as cancelled without running)
--   status 2: claimed, but one of its keys is unusable; problem names the key and what is in
--             it. The bad key was repaired (a lease without expiry or of another type
--             replaced by ours; a try counter that is not an integer removed, the try counted
--             as 1), so the worker fails this job alone with that reason, dead-letters it, and
--             the id can never hold up the other ids of a batch again.
-- Rule (docs/dragonfly.md): nothing that can fail runs after a write without being contained.
-- SET ... NX never fails (a key of any type just "exists"); INCR, which fails on a value that
-- is not an integer or would overflow, runs under pcall and its failure is repaired for that
-- id alone; the queue is read before anything is written. Reads are batched: one ZMSCORE for
-- every id, one MGET for the claimed ids' records. Every key is declared; on the sharded
-- layout all keys share the shard's hashtag.
local unpack = table.unpack or unpack
local CHUNK = 500
local function chunked(command, first_arg, list)
  local out = {}
  for first = 1, #list, CHUNK do
    local last = math.min(first + CHUNK - 1, #list)
    local part
    if first_arg then
      part = redis.call(command, first_arg, unpack(list, first, last))
    else
      part = redis.call(command, unpack(list, first, last))
    end
    for j = 1, last - first + 1 do
      out[first + j - 1] = part[j]
    end
  end
  return out
end
local function kind(key)
  local t = redis.call('TYPE', key)
  return type(t) == 'table' and t.ok or t
end

local now = tonumber(ARGV[1])
local lease_ms = ARGV[2]
local n = (#KEYS - 2) / 3
local ids = {}
for i = 1, n do
  ids[i] = ARGV[3 + 2 * i]
end
local scores = chunked('ZMSCORE', KEYS[1], ids)

local note = ''
local check_abort = false
if ARGV[4] == '1' then
  local count = redis.pcall('ZCARD', KEYS[2])
  if type(count) == 'table' and count.err then
    note = KEYS[2] .. ' held a ' .. kind(KEYS[2]) .. ', not a sorted set (removed)'
    redis.call('DEL', KEYS[2])
  else
    check_abort = count > 0
  end
end

local out = {note}
local claimed = {}
local record_keys = {}
for i = 1, n do
  local at = 1 + 6 * (i - 1)
  out[at + 1] = 0
  out[at + 2] = ''
  out[at + 3] = ''
  out[at + 4] = 0
  out[at + 5] = 0
  out[at + 6] = ''
  local score = scores[i]
  if score and tonumber(score) <= now then
    local lease = KEYS[3 * i]
    local token = ARGV[4 + 2 * i]
    if redis.call('SET', lease, token, 'PX', lease_ms, 'NX') then
      out[at + 1] = 1
    else
      -- held by another run, unless the key can never expire or is not a lease at all
      local t = kind(lease)
      if t ~= 'string' or redis.call('PTTL', lease) == -1 then
        local what = t == 'string' and 'a lease that never expires' or ('a ' .. t)
        out[at + 6] = lease .. ' held ' .. what .. ' (replaced)'
        redis.call('DEL', lease)
        redis.call('SET', lease, token, 'PX', lease_ms)
        out[at + 1] = 2
      end
    end
    if out[at + 1] ~= 0 then
      claimed[#claimed + 1] = i
      record_keys[#record_keys + 1] = KEYS[3 * i + 1]
      out[at + 2] = score
      local retry = KEYS[3 * i + 2]
      local try = redis.pcall('INCR', retry)
      if type(try) == 'table' and try.err then
        local t = kind(retry)
        local shown = t == 'string' and ('"' .. string.sub(redis.call('GET', retry), 1, 40) .. '"')
          or ('a ' .. t)
        local problem = retry .. ' held ' .. shown .. ', not a try count (removed)'
        out[at + 6] = out[at + 6] == '' and problem or (out[at + 6] .. '; ' .. problem)
        redis.call('DEL', retry)
        try = redis.call('INCR', retry)
        out[at + 1] = 2
      end
      redis.call('EXPIRE', retry, ARGV[3])
      out[at + 4] = try
      if check_abort then
        out[at + 5] = redis.call('ZREM', KEYS[2], ids[i])
      end
    end
  end
end
local records = chunked('MGET', nil, record_keys)
for c = 1, #claimed do
  local i = claimed[c]
  local at = 1 + 6 * (i - 1)
  local record = records[c]
  if record then
    out[at + 3] = record
  elseif kind(KEYS[3 * i + 1]) ~= 'none' then
    local problem = KEYS[3 * i + 1] .. ' held a ' .. kind(KEYS[3 * i + 1]) .. ', not a job record'
    out[at + 6] = out[at + 6] == '' and problem or (out[at + 6] .. '; ' .. problem)
    out[at + 1] = 2
  end
end
return out
