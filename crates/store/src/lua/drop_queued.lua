-- A deleted endpoint's queued deliveries end here: each id of the chunk the
-- caller read that is still held or due is removed from its queue and
-- failed (reason `endpoint_deleted`), without an attempt; so is a chunk of
-- its lane (and of the items taken from it): the history says failed.
-- Never resumes the endpoint (so nothing held is sent to an endpoint being
-- removed); refuses to run while the endpoint's hash exists.
-- KEYS[1] = endpoint hash, KEYS[2] = held set, KEYS[3] = due zset, KEYS[4] = ready zset,
-- KEYS[5] = lane, KEYS[6] = taken zset, KEYS[7] = history log, KEYS[8] = lanes hash,
-- KEYS[9] = stream, then one delivery hash per id
-- ARGV[1] = endpoint id, ARGV[2] = most lane items, then the delivery ids
-- (as read from the held set and the due queue)
-- Returns how many deliveries it failed, or -1 while the endpoint exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local failed = 0
for i = 3, #ARGV do
  local id, dkey = ARGV[i], KEYS[7 + i]
  local queued = redis.call('SREM', KEYS[2], id) + redis.call('ZREM', KEYS[3], id)
  if queued > 0 and redis.call('EXISTS', dkey) == 1 then
    redis.call('HSET', dkey, 'status', STATUS_FAILED, 'reason', 'endpoint_deleted')
    redis.call('HDEL', dkey, 'next_at')
    failed = failed + 1
  end
end
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('ZREM', KEYS[4], ARGV[1]) end
-- A lane item is its delivery's entry id: the delivery goes into the
-- history as failed (it had no record yet).
local chunk = tonumber(ARGV[2])
local items = redis.call('LPOP', KEYS[5], chunk) or {}
local taken = redis.call('ZRANGE', KEYS[6], 0, chunk - 1)
if #taken > 0 then redis.call('ZREM', KEYS[6], unpack(taken)) end
for _, list in ipairs({ items, taken }) do
  for _, id in ipairs(list) do
    local ms = tonumber(string.match(id, '^(%d+)-'))
    local entry = redis.call('XRANGE', KEYS[9], id, id)
    if ms and entry[1] then
      local evid, evtype = 'evt_' .. id, ''
      local f = entry[1][2]
      for j = 1, #f, 2 do
        if f[j] == 'id' then evid = f[j + 1] elseif f[j] == 'type' then evtype = f[j + 1] end
      end
      redis.call('ZADD', KEYS[7], ms, id .. '_' .. cjson.encode({ evid, evtype, STATUS_FAILED }))
    end
    failed = failed + 1
  end
end
if redis.call('EXISTS', KEYS[5]) == 0 and redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('HDEL', KEYS[8], ARGV[1])
end
return failed
