-- Pause an endpoint, only while it exists: a pause racing a delete must not
-- leave a hash behind. Bumps the configuration version for the daemons' caches.
-- KEYS[1] = endpoint hash, KEYS[2] = configuration version
-- ARGV[1] = reason, ARGV[2] = now (ms). Returns 1 when paused, 0 when there is no endpoint.
if redis.call('HEXISTS', KEYS[1], 'doc') == 0 then return 0 end
redis.call('HSET', KEYS[1], 'paused', '1', 'paused_reason', ARGV[1], 'paused_at', ARGV[2])
redis.call('INCR', KEYS[2])
return 1
