-- Record one attempt and what follows it, atomically.
-- KEYS[1] = due zset
-- ARGV[1] = partition tag, ARGV[2] = delivery id, ARGV[3] = attempt JSON, ARGV[4] = attempt number,
-- ARGV[5] = new status (succeeded | retrying | failed), ARGV[6] = next due (ms, for retrying),
-- ARGV[7] = retention (s), ARGV[8] = pause reason ('' for none), ARGV[9] = now (ms)
-- Returns 1, or 0 when the delivery no longer exists (expired).
local due, tag, id = KEYS[1], ARGV[1], ARGV[2]
local dkey = tag .. ':dlv:' .. id
local ep = redis.call('HGET', dkey, 'endpoint')
if not ep then
  redis.call('ZREM', due, id)
  return 0
end
local akey = dkey .. ':attempts'
redis.call('RPUSH', akey, ARGV[3])
-- The attempts expire with their delivery.
local ttl = redis.call('TTL', dkey)
redis.call('EXPIRE', akey, ttl > 0 and ttl or tonumber(ARGV[7]))
redis.call('HSET', dkey, 'attempts', ARGV[4], 'status', ARGV[5])
if ARGV[5] == 'retrying' then
  redis.call('ZADD', due, tonumber(ARGV[6]), id)
  redis.call('HSET', dkey, 'next_at', ARGV[6])
else
  redis.call('ZREM', due, id)
  redis.call('HDEL', dkey, 'next_at')
end
if ARGV[8] ~= '' then
  redis.call('HSET', tag .. ':ep:' .. ep, 'paused', '1', 'paused_reason', ARGV[8], 'paused_at', ARGV[9])
end
return 1
