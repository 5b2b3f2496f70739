-- Claim due deliveries: push each one's due time forward by the lease, so no
-- other worker takes it while its request runs. Deliveries of a paused
-- endpoint move to its held set; those of a deleted endpoint, or whose event
-- expired, fail.
-- KEYS[1] = due zset
-- ARGV[1] = partition tag, ARGV[2] = now (ms), ARGV[3] = lease (ms), ARGV[4] = limit
-- Returns a flat list, 8 per claimed delivery:
--   id, endpoint id, endpoint doc, attempts so far, created (ms), event id, event type, envelope
local due, tag = KEYS[1], ARGV[1]
local now, lease, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local dkey = tag .. ':dlv:' .. id
  local d = redis.call('HMGET', dkey, 'endpoint', 'event_key', 'attempts', 'created', 'event_id', 'type')
  if not d[1] then
    redis.call('ZREM', due, id)
  else
    local ep = redis.call('HMGET', tag .. ':ep:' .. d[1], 'doc', 'paused')
    local envelope = redis.call('GET', d[2])
    if not ep[1] or not envelope then
      redis.call('ZREM', due, id)
      redis.call('HSET', dkey, 'status', 'failed', 'reason', not ep[1] and 'endpoint_deleted' or 'event_expired')
    elseif ep[2] == '1' then
      redis.call('ZREM', due, id)
      redis.call('HSET', dkey, 'status', 'held')
      redis.call('SADD', tag .. ':held:' .. d[1], id)
    else
      redis.call('ZADD', due, now + lease, id)
      table.insert(out, id)
      table.insert(out, d[1])
      table.insert(out, ep[1])
      table.insert(out, d[3])
      table.insert(out, d[4])
      table.insert(out, d[5])
      table.insert(out, d[6])
      table.insert(out, envelope)
    end
  end
end
return out
