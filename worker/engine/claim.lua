-- Claim a batch of due ARQ jobs in one call (worker/engine/claim.py).
-- KEYS[1]: the queue (ARQ's sorted set of job ids scored by due time in ms, e.g. arq:queue)
-- KEYS[2]: ARQ's abort set (arq:abort)
-- KEYS[3 + 3*(i-1)]: arq:in-progress:<id i>  the lease, written with the claim's token
-- KEYS[4 + 3*(i-1)]: arq:job:<id i>          the job record (read)
-- KEYS[5 + 3*(i-1)]: arq:retry:<id i>        ARQ's try counter (incremented)
-- ARGV[1]: now, ms since the epoch (integer)
-- ARGV[2]: lease in ms (integer >= 1)
-- ARGV[3]: try counter TTL in seconds (ARQ: 88400)
-- ARGV[4]: 1 when aborts are honoured (ARQ's allow_abort_jobs), else 0
-- ARGV[5 + 2*(i-1)]: id i;  ARGV[6 + 2*(i-1)]: the token of id i's lease
-- returns: an array of 5 values per id, in order: claimed (1, or 0 when the id is no longer
--          due, not queued or held by another run: nothing is changed for it), score (string,
--          the due time as stored), record (string; "" when the record is missing), try
--          (integer, after the increment), aborted (1 when the id was in the abort set)
-- The reads are batched: one ZMSCORE for every id's score and one MGET for the claimed ids'
-- records (the script is atomic, so reading them together is the same as one by one); the
-- lease SET NX, INCR and EXPIRE stay per id. Every key is declared; the keys span ARQ's
-- prefixes (no common hashtag): the queue store is one instance, never a cluster
-- (docs/dragonfly.md, "The batch claim").
local unpack = table.unpack or unpack
local CHUNK = 500
-- One command per CHUNK arguments (Lua's unpack has a stack limit), replies joined in order.
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
local now = tonumber(ARGV[1])
local check_abort = ARGV[4] == '1' and redis.call('ZCARD', KEYS[2]) > 0
local n = (#KEYS - 2) / 3
local ids = {}
for i = 1, n do
  ids[i] = ARGV[3 + 2 * i]
end
local scores = chunked('ZMSCORE', KEYS[1], ids)
local claimed = {}
local record_keys = {}
for i = 1, n do
  local score = scores[i]
  if score and tonumber(score) <= now then
    if redis.call('SET', KEYS[3 * i], ARGV[4 + 2 * i], 'PX', ARGV[2], 'NX') then
      claimed[#claimed + 1] = i
      record_keys[#record_keys + 1] = KEYS[3 * i + 1]
    end
  end
end
local records = chunked('MGET', nil, record_keys)
local out = {}
for i = 1, n do
  out[5 * i - 4] = 0
  out[5 * i - 3] = ''
  out[5 * i - 2] = ''
  out[5 * i - 1] = 0
  out[5 * i] = 0
end
for c = 1, #claimed do
  local i = claimed[c]
  local retry = KEYS[3 * i + 2]
  local try = redis.call('INCR', retry)
  redis.call('EXPIRE', retry, ARGV[3])
  local aborted = 0
  if check_abort then
    aborted = redis.call('ZREM', KEYS[2], ids[i])
  end
  out[5 * i - 4] = 1
  out[5 * i - 3] = scores[i]
  out[5 * i - 2] = records[c] or ''
  out[5 * i - 1] = try
  out[5 * i] = aborted
end
return out
