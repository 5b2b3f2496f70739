-- Create an endpoint unless its workspace already has the most allowed: the
-- count and the write in one step, so creates racing each other never pass
-- the limit together.
-- KEYS[1] = endpoint hash, KEYS[2] = the workspace's endpoint set,
-- KEYS[3] = the partition's configuration version, KEYS[4..] = the
-- subscription sets the endpoint joins
-- ARGV[1] = most endpoints per workspace (0: no limit), ARGV[2] = endpoint id,
-- then field, value pairs for the endpoint hash
-- Returns 1 when created, or -(the count) when the workspace is full.
local max = tonumber(ARGV[1])
if max > 0 then
  local count = redis.call('SCARD', KEYS[2])
  if count >= max then return -count end
end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[3])
for i = 4, #KEYS do redis.call('SADD', KEYS[i], ARGV[2]) end
return 1
