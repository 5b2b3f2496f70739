-- The first step of a claim (see claim.lua): which endpoints have a
-- delivery due now, by Redis's clock. Writes nothing.
-- KEYS[1] = ready zset
-- ARGV[1] = most endpoints
-- Returns {now (ms), endpoint ids...}.
local now = clock_ms()
local out = { now }
for _, ep in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do
  out[#out + 1] = ep
end
return out
