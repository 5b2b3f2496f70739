-- Replace an endpoint's document only if it is still the one read (resealing
-- under a new key must not write back over a concurrent update).
-- KEYS[1] = endpoint hash, KEYS[2] = configuration version
-- ARGV[1] = document as read, ARGV[2] = new document. Returns 1 when swapped.
if redis.call('HGET', KEYS[1], 'doc') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'doc', ARGV[2])
  redis.call('INCR', KEYS[2])
  return 1
end
return 0
