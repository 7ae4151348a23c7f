-- A drain job starting: if it is the shard's scheduled drain, unschedule it, so that the next
-- put schedules a new one (the claimant drains everything pending before that put).
-- KEYS[1]: seen:{dl:<s>}:drain   hash id, at: the shard's scheduled drain job
-- ARGV[1]: the starting drain job's id
-- returns: 1 when it was the scheduled drain (now unscheduled), 0 otherwise; the error reply
--          "BADKEY <key> <problem>" when the record is not a hash (it is removed: the next put
--          or repair schedules a new drain)
local id = redis.pcall('HGET', KEYS[1], 'id')
if type(id) == 'table' and id.err and not string.find(id.err, 'WRONGTYPE', 1, true) then
  return id  -- not about the key (out of memory, ...): the error as it came
end
if type(id) == 'table' and id.err then
  local held = redis.call('TYPE', KEYS[1])['ok']
  redis.call('DEL', KEYS[1])
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' holds a ' .. held .. ', not a drain record; removed')
end
if id == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
