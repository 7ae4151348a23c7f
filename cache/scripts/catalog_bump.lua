-- Catalog generation bump: makes every entry keyed by the old generation unreachable at once.
-- The new value is max(old + 1, ARGV[1]) so a counter that was lost (expired, evicted,
-- failed over) restarts above any generation it held, and never reuses an old one.
-- KEYS[1]: seen:catalog:gen:{u:<user>} or seen:catalog:gen:global   the generation counter
-- ARGV[1]: floor for the new value: the caller's clock in microseconds (integer < 2^53)
-- ARGV[2]: TTL of the counter in milliseconds (integer, > every entry TTL)
-- returns: the new generation (integer)
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local floor = tonumber(ARGV[1]) or 0
local new = math.floor(current) + 1
if floor > new then
  new = math.floor(floor)
end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', ARGV[2])
return new
