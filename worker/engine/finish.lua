-- Finish a batch of ARQ jobs in one call, each only while its lease still holds the run's
-- token (worker/engine/finish.py): a job whose lease was lost writes nothing.
-- KEYS[1]: the queue (ARQ's sorted set, e.g. arq:queue)
-- KEYS[2]: ARQ's abort set (arq:abort)
-- KEYS[3 + 4*(i-1)]: arq:in-progress:<id i>  the lease (compared with the token)
-- KEYS[4 + 4*(i-1)]: arq:result:<id i>       the result record (written when finished)
-- KEYS[5 + 4*(i-1)]: arq:retry:<id i>        deleted when finished
-- KEYS[6 + 4*(i-1)]: arq:job:<id i>          deleted when finished
-- ARGV[1 + 6*(i-1)]: id i
-- ARGV[2 + 6*(i-1)]: the token of id i's lease
-- ARGV[3 + 6*(i-1)]: lease: -1 deletes it, n >= 1 keeps it n ms more (ARQ's cron jobs)
-- ARGV[4 + 6*(i-1)]: 1 when the job is over (result, record and try counter settled), else 0
-- ARGV[5 + 6*(i-1)]: result record ("" writes none)
-- ARGV[6 + 6*(i-1)]: result TTL in ms (0: kept forever) when over; else the score increment
--                    of a retry (0: none)
-- returns: an array with one integer per id: 1 finished, 0 refused (lease not held with the
--          token: expired or taken over; nothing of that job is changed)
-- Batched: one MGET reads every lease before anything is written (the script is atomic, and a
-- batch never holds two finishes with the same token, so this equals reading them one by one),
-- one DEL removes every deleted key and one ZREM the finished ids; the result SET, a kept
-- lease's PEXPIRE and a retry's ZINCRBY stay per job. Every key is declared; the keys span
-- ARQ's prefixes (no common hashtag): see claim.lua.
local unpack = table.unpack or unpack
local CHUNK = 500
local n = (#KEYS - 2) / 4
local leases = {}
local lease_keys = {}
for i = 1, n do
  lease_keys[i] = KEYS[3 + 4 * (i - 1)]
end
for first = 1, n, CHUNK do
  local last = math.min(first + CHUNK - 1, n)
  local part = redis.call('MGET', unpack(lease_keys, first, last))
  for j = 1, last - first + 1 do
    leases[first + j - 1] = part[j]
  end
end
local out = {}
local over = {}
local dels = {}
for i = 1, n do
  local a = 6 * (i - 1)
  local id = ARGV[a + 1]
  local k = 3 + 4 * (i - 1)
  if leases[i] == ARGV[a + 2] then
    local keep = tonumber(ARGV[a + 3])
    if keep < 0 then
      dels[#dels + 1] = KEYS[k]
    else
      redis.call('PEXPIRE', KEYS[k], keep)
    end
    if ARGV[a + 4] == '1' then
      local result = ARGV[a + 5]
      if result ~= '' then
        if ARGV[a + 6] ~= '0' then
          redis.call('SET', KEYS[k + 1], result, 'PX', ARGV[a + 6])
        else
          redis.call('SET', KEYS[k + 1], result)
        end
      end
      dels[#dels + 1] = KEYS[k + 2]
      dels[#dels + 1] = KEYS[k + 3]
      over[#over + 1] = id
    elseif ARGV[a + 6] ~= '0' then
      redis.call('ZINCRBY', KEYS[1], ARGV[a + 6], id)
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
for first = 1, #dels, CHUNK do
  redis.call('DEL', unpack(dels, first, math.min(first + CHUNK - 1, #dels)))
end
if #over > 0 then
  local abort = redis.call('ZCARD', KEYS[2]) > 0
  for first = 1, #over, CHUNK do
    local last = math.min(first + CHUNK - 1, #over)
    redis.call('ZREM', KEYS[1], unpack(over, first, last))
    if abort then
      redis.call('ZREM', KEYS[2], unpack(over, first, last))
    end
  end
end
return out
