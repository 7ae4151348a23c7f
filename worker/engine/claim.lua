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
-- Every key is declared; the keys span ARQ's prefixes (no common hashtag): the queue store is
-- one instance, never a cluster (docs/dragonfly.md, "The batch claim").
local now = tonumber(ARGV[1])
local check_abort = ARGV[4] == '1' and redis.call('ZCARD', KEYS[2]) > 0
local out = {}
local n = (#KEYS - 2) / 3
for i = 1, n do
  local id = ARGV[3 + 2 * i]
  local token = ARGV[4 + 2 * i]
  local k = 3 * i
  local score = redis.call('ZSCORE', KEYS[1], id)
  local claimed = false
  if score and tonumber(score) <= now then
    claimed = redis.call('SET', KEYS[k], token, 'PX', ARGV[2], 'NX')
  end
  if claimed then
    local record = redis.call('GET', KEYS[k + 1]) or ''
    local try = redis.call('INCR', KEYS[k + 2])
    redis.call('EXPIRE', KEYS[k + 2], ARGV[3])
    local aborted = 0
    if check_abort then
      aborted = redis.call('ZREM', KEYS[2], id)
    end
    out[#out + 1] = 1
    out[#out + 1] = score
    out[#out + 1] = record
    out[#out + 1] = try
    out[#out + 1] = aborted
  else
    out[#out + 1] = 0
    out[#out + 1] = ''
    out[#out + 1] = ''
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
