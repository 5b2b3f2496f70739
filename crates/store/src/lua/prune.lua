-- Forget a consumer of the group, only if it has nothing pending now: the
-- check and the removal in one step, so an entry it read after the caller
-- looked (XINFO) is never dropped with it.
-- KEYS[1] = stream
-- ARGV[1] = group, ARGV[2] = consumer
-- Returns 1 when the consumer was removed, 0 when it has entries pending.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
