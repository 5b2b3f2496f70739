-- Resume an endpoint and release held deliveries to its due queue: the
-- chunk of ids the caller read from the held set (at most a few hundred per
-- call, so no call runs long enough to make Redis answer BUSY to producers).
-- KEYS[1] = endpoint hash, KEYS[2] = held set, KEYS[3] = endpoint due zset, KEYS[4] = ready zset,
-- KEYS[5] = the partition's configuration version, then one delivery hash per id
-- ARGV[1] = endpoint id, then the delivery ids
-- Returns {released, still held}, or {-1, still held} when the endpoint does not exist.
local released = 0
local exists = redis.call('EXISTS', KEYS[1]) == 1
if not exists then
  return { -1, redis.call('SCARD', KEYS[2]) }
end
if redis.call('HGET', KEYS[1], 'paused') ~= '0' then redis.call('INCR', KEYS[5]) end
redis.call('HSET', KEYS[1], 'paused', '0')
-- A fresh start for the circuit breaker too.
redis.call('HDEL', KEYS[1], 'paused_reason', 'paused_at', 'fails', 'failing_since', 'last_error')
local now = string.format('%d', clock_ms())
local due = {}
for i = 2, #ARGV do
  local id, dkey = ARGV[i], KEYS[4 + i]
  if redis.call('SREM', KEYS[2], id) == 1 then
    local attempts = redis.call('HGET', dkey, 'attempts')
    if attempts then
      redis.call('HSET', dkey, 'status', tonumber(attempts) > 0 and STATUS_RETRYING or STATUS_PENDING)
      due[#due + 1] = now
      due[#due + 1] = id
      released = released + 1
    end
  end
end
if #due > 0 then redis.call('ZADD', KEYS[3], unpack(due)) end
if released > 0 or redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('ZADD', KEYS[4], now, ARGV[1])
end
return { released, redis.call('SCARD', KEYS[2]) }
