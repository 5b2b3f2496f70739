-- A deleted endpoint's queued deliveries end here: each id of the chunk the
-- caller read that is still held or due is removed from its queue and
-- failed (reason `endpoint_deleted`), without an attempt. Never resumes the
-- endpoint (so nothing held is sent to an endpoint being removed); refuses
-- to run while the endpoint's hash exists.
-- KEYS[1] = endpoint hash, KEYS[2] = held set, KEYS[3] = due zset, KEYS[4] = ready zset,
-- then one delivery hash per id
-- ARGV[1] = endpoint id, then the delivery ids (as read from the held set and the due queue)
-- Returns how many deliveries it failed, or -1 while the endpoint exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local failed = 0
for i = 2, #ARGV do
  local id, dkey = ARGV[i], KEYS[3 + i]
  local queued = redis.call('SREM', KEYS[2], id) + redis.call('ZREM', KEYS[3], id)
  if queued > 0 and redis.call('EXISTS', dkey) == 1 then
    redis.call('HSET', dkey, 'status', STATUS_FAILED, 'reason', 'endpoint_deleted')
    redis.call('HDEL', dkey, 'next_at')
    failed = failed + 1
  end
end
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('ZREM', KEYS[4], ARGV[1]) end
return failed
