-- Take deliveries from an endpoint's lane for their attempts: the oldest
-- first, each leased until `now + lease` in the endpoint's taken set (the
-- lease's expiry is the take's token: settle.lua records an attempt only
-- while its item is still taken with it). Items a dead daemon took and
-- never settled (lease over) go back to the head of the lane first.
-- KEYS[1] = lane, KEYS[2] = taken zset, KEYS[3] = the partition's lanes hash,
-- KEYS[4] = stream
-- ARGV[1] = most items, ARGV[2] = lease (ms), ARGV[3] = endpoint id
-- Returns {lease until (ms), then per item: its entry id, the entry's
-- fields (false when the entry is gone from the stream)}.
local lane, taken, lanes, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = clock_ms()
local expired = redis.call('ZRANGEBYSCORE', taken, '-inf', now)
if #expired > 0 then
  redis.call('ZREM', taken, unpack(expired))
  for i = #expired, 1, -1 do redis.call('LPUSH', lane, expired[i]) end
end
local until_ = string.format('%d', now + tonumber(ARGV[2]))
local out = { until_ }
local items = redis.call('LPOP', lane, tonumber(ARGV[1]))
if not items then
  if redis.call('ZCARD', taken) == 0 then redis.call('HDEL', lanes, ARGV[3]) end
  return out
end
local leased = {}
for _, id in ipairs(items) do
  leased[#leased + 1] = until_
  leased[#leased + 1] = id
  local entry = redis.call('XRANGE', stream, id, id)
  out[#out + 1] = id
  out[#out + 1] = entry[1] and entry[1][2] or false
end
if #leased > 0 then redis.call('ZADD', taken, unpack(leased)) end
return out
