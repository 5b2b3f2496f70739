-- Resume an endpoint and release its held deliveries to the due queue.
-- KEYS[1] = endpoint hash, KEYS[2] = held set, KEYS[3] = due zset
-- ARGV[1] = partition tag, ARGV[2] = now (ms)
-- Returns the number of deliveries released, or -1 when the endpoint does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
redis.call('HSET', KEYS[1], 'paused', '0')
redis.call('HDEL', KEYS[1], 'paused_reason', 'paused_at')
local released = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local dkey = ARGV[1] .. ':dlv:' .. id
  local attempts = redis.call('HGET', dkey, 'attempts')
  if attempts then
    redis.call('HSET', dkey, 'status', tonumber(attempts) > 0 and 'retrying' or 'pending')
    redis.call('ZADD', KEYS[3], tonumber(ARGV[2]), id)
    released = released + 1
  end
end
redis.call('DEL', KEYS[2])
return released
