-- Write an endpoint's document only if it is still the version the caller
-- read (compare and set), moving its subscriptions in the same step; or
-- delete it on the same condition. So an update racing a delete cannot
-- recreate the endpoint, and an update racing a rotation cannot write back
-- the old secret: the loser reads again and re-applies its change.
-- KEYS[1] = endpoint hash, KEYS[2] = the partition's configuration version,
-- KEYS[3..] = sets the endpoint id leaves (ARGV[4] of them), then sets it joins
-- ARGV[1] = version read, ARGV[2] = new document ('' deletes the endpoint),
-- ARGV[3] = endpoint id, ARGV[4] = how many of KEYS[2..] to leave,
-- ARGV[5..] = further field, value pairs for the endpoint hash
-- Returns 1 when written, 0 when the version changed, -1 when the endpoint is gone.
local epkey = KEYS[1]
local found = redis.call('HMGET', epkey, 'doc', 'v')
if not found[1] then return -1 end
if (found[2] or '0') ~= ARGV[1] then return 0 end
local leave = tonumber(ARGV[4])
redis.call('INCR', KEYS[2])
for i = 3, #KEYS do
  if i - 2 <= leave then
    redis.call('SREM', KEYS[i], ARGV[3])
  else
    redis.call('SADD', KEYS[i], ARGV[3])
  end
end
if ARGV[2] == '' then
  redis.call('DEL', epkey)
  return 1
end
redis.call('HSET', epkey, 'doc', ARGV[2])
for i = 5, #ARGV, 2 do
  redis.call('HSET', epkey, ARGV[i], ARGV[i + 1])
end
redis.call('HINCRBY', epkey, 'v', 1)
return 1
