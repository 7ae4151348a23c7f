-- Enqueue jobs into one queue shard (jobs/client.py enqueue_jobs), ARQ's rule per id: refused
-- while a job record or a result with that id exists (de-duplication by id).
-- KEYS[1]: the shard's queue         sorted set of job ids scored by due time (ms)
-- KEYS[2]: job record of id i        <job prefix><id> (written)
-- KEYS[3]: result of id i            <result prefix><id> (read: an id with a result is refused)
-- repeat: KEYS[2..3] for each id, in the order of the ids in ARGV
-- ARGV[1]: id i, ARGV[2]: its record (JSON), ARGV[3]: its score (the time it may start, ms
--          since the epoch), ARGV[4]: the record's TTL in ms (ARQ: one day plus the deferral);
--          four arguments per id
-- returns: one integer per id: 1 enqueued, 0 refused (a job or a result with that id exists)
-- Rule (docs/dragonfly.md): the queue's type, every id's score and TTL and whether it exists
-- are checked before the first write; SET and ZADD NX cannot fail after those checks. Every key is declared; on the sharded layout all keys share the shard's
-- hashtag, so a producer's enqueue is one hop on Dragonfly and one slot on a Redis Cluster.
local queue_type = redis.call('TYPE', KEYS[1])
queue_type = type(queue_type) == 'table' and queue_type.ok or queue_type
if queue_type ~= 'zset' and queue_type ~= 'none' then
  return redis.error_reply('ERR ' .. KEYS[1] .. ' is a ' .. queue_type .. ', not a sorted set')
end
local n = (#KEYS - 1) / 2
local out = {}
for i = 1, n do
  local a = 1 + 4 * (i - 1)
  local score, ttl = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if not score or not ttl or ttl < 1 then
    return redis.error_reply('ERR queue_enqueue: bad score or TTL for id ' .. ARGV[a])
  end
  out[i] = redis.call('EXISTS', KEYS[2 * i], KEYS[2 * i + 1]) == 0 and 1 or 0
end
local seen = {}
for i = 1, n do
  local a = 1 + 4 * (i - 1)
  if out[i] == 1 and not seen[ARGV[a]] then
    seen[ARGV[a]] = true
    redis.call('SET', KEYS[2 * i], ARGV[a + 1], 'PX', ARGV[a + 3])
    redis.call('ZADD', KEYS[1], 'NX', ARGV[a + 2], ARGV[a])
  else
    out[i] = 0
  end
end
return out
