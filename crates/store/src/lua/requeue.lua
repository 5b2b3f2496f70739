-- Queue deliveries for one operator-requested attempt each (redeliver, recover).
-- KEYS[1] = ready zset, then REQUEUE_KEYS per delivery: delivery hash,
--   endpoint hash, endpoint leases, endpoint held set, endpoint due zset
-- ARGV[1] = job id ('' for none), then 3 per delivery: delivery id, endpoint
--   id (the one its id names), due (ms)
-- Returns one integer per delivery: 1 queued (held, when its endpoint is
-- paused), 0 skipped (expired, endpoint deleted, or an attempt in flight).
local ready, job = KEYS[1], ARGV[1]
local out = {}
local n = 0
for i = 2, #ARGV, 3 do
  local id, ep, due = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local k = 1 + n * REQUEUE_KEYS
  local dkey, epkey, leases, held, duekey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  n = n + 1
  local state = redis.call('HGET', dkey, 'endpoint') == ep and redis.call('HGET', epkey, 'paused')
  if not state or redis.call('ZSCORE', leases, id) then
    table.insert(out, 0)
  else
    redis.call('HSET', dkey, 'manual', '1')
    if job ~= '' then redis.call('HSET', dkey, 'job', job) end
    if state == '1' then
      redis.call('ZREM', duekey, id)
      redis.call('SADD', held, id)
      redis.call('HSET', dkey, 'status', STATUS_HELD)
      redis.call('HDEL', dkey, 'next_at')
    else
      redis.call('SREM', held, id)
      redis.call('ZADD', duekey, due, id)
      redis.call('ZADD', ready, 'LT', due, ep)
      local attempts = tonumber(redis.call('HGET', dkey, 'attempts') or '0')
      redis.call('HSET', dkey, 'status', attempts > 0 and STATUS_RETRYING or STATUS_PENDING, 'next_at', due)
    end
    table.insert(out, 1)
  end
end
return out
