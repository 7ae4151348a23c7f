-- Health probe: write a value with a TTL, read it back and delete it, in one round trip.
-- KEYS[1]: seen:health:probe:<random>   scratch key, removed before returning
-- ARGV[1]: value to write
-- ARGV[2]: TTL in milliseconds (a safety net should the DEL never run)
-- returns: the value read back (string)
-- (nothing to check before the first write: SET replaces a key of any type, and the key is
-- this call's own random one, so no stored value is ever read)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local value = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
return value
