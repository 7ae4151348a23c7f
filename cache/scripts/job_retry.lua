-- Make one queued job due now (jobs/admin.py retry_now): a deferred job, or one waiting out a
-- retry's backoff, runs at the next poll. Only while it is queued and no run holds it.
-- KEYS[1]: the job's queue (its shard's)  sorted set of job ids scored by due time
-- KEYS[2]: the job's lease               <in-progress prefix><id> (read only)
-- ARGV[1]: the job id
-- ARGV[2]: now, ms since the epoch (its new score, when that is earlier than its own)
-- returns: integer; 1 made due now, 2 already due (nothing changed), 0 not in the queue,
--          -1 a run holds it (it is running)
-- Rule (docs/dragonfly.md): the queue's type, the lease, the entry and ARGV[2] are checked
-- before the one write (ZADD XX: the entry must still exist). Both keys share the job's
-- shard hashtag on the sharded layout.
local kind = redis.call('TYPE', KEYS[1])
kind = type(kind) == 'table' and kind.ok or kind
if kind ~= 'zset' and kind ~= 'none' then
  return redis.error_reply('ERR ' .. KEYS[1] .. ' is a ' .. kind .. ', not a sorted set')
end
local now = tonumber(ARGV[2])
if not now then
  return redis.error_reply('ERR job_retry: now is not a number')
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then
  return 0
end
if tonumber(score) <= now then
  return 2
end
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return 1
