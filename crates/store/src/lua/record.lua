-- Record attempts and what follows each, atomically, for a batch of deliveries.
-- KEYS[1] = due zset
-- ARGV[1] = partition tag, ARGV[2] = retention (s), ARGV[3] = now (ms)
-- then 6 per attempt: delivery id, attempt JSON, attempt number,
--   new status (succeeded | retrying | failed), next due (ms, for retrying), pause reason ('' for none)
-- Returns one integer per attempt: 1, or 0 when the delivery no longer exists (expired).
local due, tag = KEYS[1], ARGV[1]
local retention, now = tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 4, #ARGV, 6 do
  local id, json, number, status, next_at, pause = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local dkey = tag .. ':dlv:' .. id
  local ep = redis.call('HGET', dkey, 'endpoint')
  if not ep then
    redis.call('ZREM', due, id)
    table.insert(out, 0)
  else
    local akey = dkey .. ':attempts'
    redis.call('RPUSH', akey, json)
    -- The attempts expire with their delivery.
    local ttl = redis.call('TTL', dkey)
    redis.call('EXPIRE', akey, ttl > 0 and ttl or retention)
    if status == 'retrying' then
      redis.call('ZADD', due, tonumber(next_at), id)
      redis.call('HSET', dkey, 'attempts', number, 'status', status, 'next_at', next_at)
    else
      redis.call('ZREM', due, id)
      redis.call('HSET', dkey, 'attempts', number, 'status', status)
      redis.call('HDEL', dkey, 'next_at')
    end
    if pause ~= '' then
      redis.call('HSET', tag .. ':ep:' .. ep, 'paused', '1', 'paused_reason', pause, 'paused_at', now)
    end
    table.insert(out, 1)
  end
end
return out
