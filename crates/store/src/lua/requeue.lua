-- Queue deliveries for one operator-requested attempt each (redeliver, recover).
-- KEYS[1] = a key of the partition, unused: it routes the call on Redis Cluster
-- ARGV[1] = partition tag, ARGV[2] = job id ('' for none)
-- then 2 per delivery: delivery id, due (ms)
-- Returns one integer per delivery: 1 queued (held, when its endpoint is
-- paused), 0 skipped (expired, endpoint deleted, or an attempt in flight).
local tag, job = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 2 do
  local id, due = ARGV[i], tonumber(ARGV[i + 1])
  local dkey = key_delivery(tag, id)
  local ep = redis.call('HGET', dkey, 'endpoint')
  local state = ep and redis.call('HGET', key_endpoint(tag, ep), 'paused')
  if not state or redis.call('ZSCORE', key_leases(tag, ep), id) then
    table.insert(out, 0)
  else
    redis.call('HSET', dkey, 'manual', '1')
    if job ~= '' then redis.call('HSET', dkey, 'job', job) end
    if state == '1' then
      redis.call('ZREM', key_due(tag, ep), id)
      redis.call('SADD', key_held(tag, ep), id)
      redis.call('HSET', dkey, 'status', STATUS_HELD)
      redis.call('HDEL', dkey, 'next_at')
    else
      redis.call('SREM', key_held(tag, ep), id)
      redis.call('ZADD', key_due(tag, ep), due, id)
      redis.call('ZADD', key_ready(tag), 'LT', due, ep)
      local attempts = tonumber(redis.call('HGET', dkey, 'attempts') or '0')
      redis.call('HSET', dkey, 'status', attempts > 0 and STATUS_RETRYING or STATUS_PENDING, 'next_at', due)
    end
    table.insert(out, 1)
  end
end
return out
