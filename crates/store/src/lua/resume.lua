-- Resume an endpoint and release held deliveries to its due queue, at most
-- ARGV[4] per call (the caller calls again while some remain), so no call
-- runs long enough to make Redis answer BUSY to producers.
-- KEYS[1] = endpoint hash, KEYS[2] = held set, KEYS[3] = endpoint due zset, KEYS[4] = ready zset,
-- KEYS[5] = the partition's configuration version
-- ARGV[1] = partition tag, ARGV[2] = now (ms), ARGV[3] = endpoint id, ARGV[4] = chunk
-- Returns {released, still held}, or {-1, still held} when the endpoint does not exist.
local released = 0
local exists = redis.call('EXISTS', KEYS[1]) == 1
if exists then
  if redis.call('HGET', KEYS[1], 'paused') ~= '0' then redis.call('INCR', KEYS[5]) end
  redis.call('HSET', KEYS[1], 'paused', '0')
  -- A fresh start for the circuit breaker too.
  redis.call('HDEL', KEYS[1], 'paused_reason', 'paused_at', 'fails', 'failing_since', 'last_error')
end
local ids = redis.call('SPOP', KEYS[2], tonumber(ARGV[4]))
local due = {}
for _, id in ipairs(ids) do
  local dkey = key_delivery(ARGV[1], id)
  local attempts = redis.call('HGET', dkey, 'attempts')
  if attempts then
    redis.call('HSET', dkey, 'status', tonumber(attempts) > 0 and STATUS_RETRYING or STATUS_PENDING)
    due[#due + 1] = ARGV[2]
    due[#due + 1] = id
    released = released + 1
  end
end
if #due > 0 then redis.call('ZADD', KEYS[3], unpack(due)) end
if released > 0 or redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('ZADD', KEYS[4], tonumber(ARGV[2]), ARGV[3])
end
local left = redis.call('SCARD', KEYS[2])
if not exists then
  return { -1, left }
end
return { released, left }
