-- Mark a claimed slot as done, so a late duplicate of the same cron id is skipped.
-- KEYS[1]: seen:cron:<job name>:<slot>   the slot's claim
-- ARGV[1]: job id that holds the claim
-- returns: 1 marked done, 0 the claim is not ours (expired or taken over)
if redis.call('GET', KEYS[1]) == 'run:' .. ARGV[1] then
  redis.call('SET', KEYS[1], 'done:' .. ARGV[1], 'KEEPTTL')
  return 1
end
return 0
