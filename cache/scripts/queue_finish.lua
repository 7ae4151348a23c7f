-- Finish a batch of jobs of one queue shard in one call (worker/engine/finish.py), each only
-- while its lease still holds the run's token: a job whose lease was lost changes nothing.
-- KEYS[1]: the shard's queue         sorted set of job ids
-- KEYS[2]: the shard's abort set     sorted set of ids to abort
-- KEYS[3]: lease of id i             compared with the token
-- KEYS[4]: result of id i            the result record (written when over)
-- KEYS[5]: try counter of id i       deleted when over; set when the run gives a try back
-- KEYS[6]: job record of id i        deleted when over
-- repeat: KEYS[3..6] for each id, in the order of the ids in ARGV
-- ARGV[1]: try counter TTL in seconds (ARQ: 88400)
-- ARGV[2]: id i, then ARGV[3..8] of id i (seven arguments per id):
-- ARGV[3]: the token of id i's lease
-- ARGV[4]: lease: -1 deletes it, n >= 1 keeps it n ms more (periodic jobs)
-- ARGV[5]: 1 when the job is over (result written, record and try counter deleted, off the
--          queue), else 0 (it stays queued: a retry)
-- ARGV[6]: result record ("" writes none)
-- ARGV[7]: when over, the result TTL in ms (0: kept forever); else the score increment of
--          the retry in ms (0: none)
-- ARGV[8]: try counter: -1 leaves it, 0 deletes it, n >= 1 sets it to n (a try given back)
-- returns: one value per id: 1 finished, 0 refused (the lease is not held with the token:
--          expired or taken over; nothing of that job changed), or a string: finished, but
--          the result record could not be written (the store's reason)
-- Rule (docs/dragonfly.md): the queue is checked before the first write, every lease is read
-- (one MGET) before anything is written, and the writes that can fail on a full store run
-- under pcall after the deletes (which free memory and cannot fail), so a batch is never
-- left half applied. One DEL removes every deleted key of the batch, one ZREM every finished
-- id. Every key is declared; on the sharded layout all keys share the shard's hashtag.
local unpack = table.unpack or unpack
local CHUNK = 500
local queue_ok = redis.pcall('ZCARD', KEYS[1])
if type(queue_ok) == 'table' and queue_ok.err then
  return redis.error_reply('ERR ' .. KEYS[1] .. ' is not a sorted set: ' .. queue_ok.err)
end
local n = (#KEYS - 2) / 4
local lease_keys = {}
for i = 1, n do
  lease_keys[i] = KEYS[3 + 4 * (i - 1)]
end
local leases = {}
for first = 1, n, CHUNK do
  local last = math.min(first + CHUNK - 1, n)
  local part = redis.call('MGET', unpack(lease_keys, first, last))
  for j = 1, last - first + 1 do
    leases[first + j - 1] = part[j]
  end
end
local out = {}
local held = {}
local over = {}
local dels = {}
for i = 1, n do
  local a = 2 + 7 * (i - 1)
  local k = 3 + 4 * (i - 1)
  if leases[i] == ARGV[a + 1] then
    held[#held + 1] = i
    if tonumber(ARGV[a + 2]) < 0 then
      dels[#dels + 1] = KEYS[k]
    end
    if ARGV[a + 3] == '1' then
      dels[#dels + 1] = KEYS[k + 2]
      dels[#dels + 1] = KEYS[k + 3]
      over[#over + 1] = ARGV[a]
    elseif ARGV[a + 6] == '0' then
      dels[#dels + 1] = KEYS[k + 2]
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
for first = 1, #dels, CHUNK do
  redis.call('DEL', unpack(dels, first, math.min(first + CHUNK - 1, #dels)))
end
for h = 1, #held do
  local i = held[h]
  local a = 2 + 7 * (i - 1)
  local k = 3 + 4 * (i - 1)
  local keep = tonumber(ARGV[a + 2])
  if keep >= 0 then
    redis.call('PEXPIRE', KEYS[k], keep)
  end
  if ARGV[a + 3] == '1' then
    local result = ARGV[a + 4]
    if result ~= '' then
      local done
      if ARGV[a + 5] ~= '0' then
        done = redis.pcall('SET', KEYS[k + 1], result, 'PX', ARGV[a + 5])
      else
        done = redis.pcall('SET', KEYS[k + 1], result)
      end
      if type(done) == 'table' and done.err then
        out[i] = done.err
      end
    end
  else
    if ARGV[a + 5] ~= '0' then
      redis.pcall('ZADD', KEYS[1], 'XX', 'INCR', ARGV[a + 5], ARGV[a])
    end
    local retry_to = tonumber(ARGV[a + 6])
    if retry_to > 0 then
      redis.pcall('SET', KEYS[k + 2], retry_to, 'EX', ARGV[1])
    end
  end
end
if #over > 0 then
  local aborts = redis.pcall('ZCARD', KEYS[2])
  local abort = type(aborts) == 'number' and aborts > 0
  for first = 1, #over, CHUNK do
    local last = math.min(first + CHUNK - 1, #over)
    redis.call('ZREM', KEYS[1], unpack(over, first, last))
    if abort then
      redis.call('ZREM', KEYS[2], unpack(over, first, last))
    end
  end
end
return out
