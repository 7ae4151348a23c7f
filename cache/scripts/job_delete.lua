-- Delete one waiting job (jobs/admin.py delete_job): only while it is still queued and no run
-- holds it, so a job a worker claimed a moment ago is never deleted under that worker.
-- KEYS[1]: the job's queue (its shard's)  sorted set of job ids scored by due time
-- KEYS[2]: the job's lease               <in-progress prefix><id> (read only)
-- KEYS[3]: the job record                <job prefix><id> (deleted)
-- KEYS[4]: the try counter               <retry prefix><id> (deleted)
-- KEYS[5]: the abort set                 sorted set of ids to abort (the id removed)
-- ARGV[1]: the job id
-- returns: integer; 1 deleted, 0 not in the queue (already claimed and finished, or never
--          there), -1 a run holds it (running: cancel it instead); nothing changed unless 1
-- Rule (docs/dragonfly.md): the types of both sorted sets, the lease and the queue entry are
-- checked before the first write; DEL and ZREM cannot fail after those checks. Every key is
-- declared; on the sharded layout all five share the job's shard hashtag.
for _, key in ipairs({KEYS[1], KEYS[5]}) do
  local kind = redis.call('TYPE', key)
  kind = type(kind) == 'table' and kind.ok or kind
  if kind ~= 'zset' and kind ~= 'none' then
    return redis.error_reply('ERR ' .. key .. ' is a ' .. kind .. ', not a sorted set')
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4])
return 1
