-- Catalog generation bump: makes every entry keyed by the old generation unreachable at once.
-- The new value is max(old + 1, ARGV[1]) so a counter that was lost (expired, evicted,
-- failed over) restarts above any generation it held, and never reuses an old one.
-- KEYS[1]: seen:catalog:gen:{u:<user>} or seen:catalog:gen:global   the generation counter
-- ARGV[1]: floor for the new value: the caller's clock in microseconds (integer < 2^53)
-- ARGV[2]: TTL of the counter in milliseconds (integer, > every entry TTL)
-- returns: the new generation (integer); or the error reply "BADKEY <key> <problem>" when the
--          counter is not an integer below 2^53: it is reset to ARGV[1] as a lost counter would
--          be (catalog entries are cache data: the old ones become unreachable, as on any bump)
local raw = redis.pcall('GET', KEYS[1])
if type(raw) == 'table' and raw.err and not string.find(raw.err, 'WRONGTYPE', 1, true) then
  return raw  -- not about the key (out of memory, ...): the error as it came
end
local floor = tonumber(ARGV[1]) or 0
local current, problem = 0, nil
if type(raw) == 'table' then
  problem = 'holds a ' .. redis.call('TYPE', KEYS[1])['ok'] .. ', not a generation counter'
elseif raw then
  current = #raw <= 16 and string.match(raw, '^%d+$') and tonumber(raw)
  if not current or current >= 9007199254740991 then
    problem = 'holds "' .. string.sub(raw, 1, 40) .. '", not an integer generation below 2^53 - 1'
  end
end
if problem then
  redis.call('SET', KEYS[1], string.format('%d', floor), 'PX', ARGV[2])  -- replaces any type
  return redis.error_reply('BADKEY ' .. KEYS[1] .. ' ' .. problem .. '; reset to generation '
    .. string.format('%d', floor))
end
local new = current + 1
if floor > new then
  new = floor
end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', ARGV[2])
return new
