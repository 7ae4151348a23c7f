-- A drain job starting: if it is the shard's scheduled drain, unschedule it, so that the next
-- put schedules a new one (the claimant drains everything pending before that put).
-- KEYS[1]: seen:{dl:<s>}:drain   hash id, at: the shard's scheduled drain job
-- ARGV[1]: the starting drain job's id
-- returns: 1 when it was the scheduled drain (now unscheduled), 0 otherwise
if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
