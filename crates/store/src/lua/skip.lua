-- Skip a delivery of an ordered endpoint's key (an operator's choice, for
-- a key that a given-up head holds under `ordering_on_give_up: hold`, or a
-- delivery that should not go at all): it leaves its key's order and ends
-- `failed` (reason `skipped`), unsent from now (an attempt in flight is
-- no longer recorded: its lease is dropped); when it was the key's head,
-- the next delivery of the key is due now. (`order_member` and `order_next`
-- come from queues.lua.)
-- KEYS[1] = delivery hash, KEYS[2] = its key's order zset, KEYS[3] = the
-- endpoint's due zset, KEYS[4] = its held set, KEYS[5] = ready zset
-- ARGV[1] = delivery id, ARGV[2] = endpoint id, ARGV[3] = the prefix of delivery hashes
-- Returns 1 when skipped, 0 when it is not in its key's order (ended, or not ordered).
local dkey, order, due, held, ready = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, ep = ARGV[1], ARGV[2]
if redis.call('HGET', dkey, 'endpoint') ~= ep then return 0 end
local m = order_member(string.match(id, '^dlv_([^_]+)_'))
local head = redis.call('ZRANGE', order, 0, 0)[1]
if redis.call('ZREM', order, m) == 0 then return 0 end
redis.call('ZREM', due, id)
redis.call('SREM', held, id)
redis.call('HDEL', dkey, 'lease', 'next_at', 'holding')
redis.call('HSET', dkey, 'status', STATUS_FAILED, 'reason', 'skipped')
if head == m then
  local now = clock_ms()
  if order_next(order, ARGV[3], ep, due, now) then
    redis.call('ZADD', ready, 'LT', now, ep)
  end
end
return 1
