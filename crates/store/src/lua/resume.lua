-- Resume an endpoint and release its held deliveries to its due queue.
-- KEYS[1] = endpoint hash, KEYS[2] = held set, KEYS[3] = endpoint due zset, KEYS[4] = ready zset
-- ARGV[1] = partition tag, ARGV[2] = now (ms), ARGV[3] = endpoint id
-- Returns the number of deliveries released, or -1 when the endpoint does not exist.
local released = 0
local exists = redis.call('EXISTS', KEYS[1]) == 1
if exists then
  redis.call('HSET', KEYS[1], 'paused', '0')
  -- A fresh start for the circuit breaker too.
  redis.call('HDEL', KEYS[1], 'paused_reason', 'paused_at', 'fails', 'failing_since')
end
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
if released > 0 or redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('ZADD', KEYS[4], tonumber(ARGV[2]), ARGV[3])
end
if not exists then
  return -1
end
return released
