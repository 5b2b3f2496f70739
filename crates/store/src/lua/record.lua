-- Record attempts and what follows each, atomically, for a batch of deliveries.
-- Also the circuit breaker: an endpoint whose attempts have failed `trip_after`
-- times in a row, over at least `trip_window` ms, is paused.
-- KEYS[1] = ready zset
-- ARGV[1] = partition tag, ARGV[2] = retention (s), ARGV[3] = now (ms),
-- ARGV[4] = trip_after (0: no breaker), ARGV[5] = trip_window (ms)
-- then 7 per attempt: delivery id, attempt JSON, attempt number,
--   new status (succeeded | retrying | failed), next due (ms, for retrying), pause reason ('' for none),
--   error ('' when it succeeded)
-- Returns {results, tripped}: one integer per attempt (1, or 0 when the delivery
-- no longer exists), and 5 per endpoint the breaker paused:
-- endpoint id, endpoint doc, failures, failing since (ms), last error.
local ready, tag = KEYS[1], ARGV[1]
local retention, now = tonumber(ARGV[2]), ARGV[3]
local trip_after, trip_window = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
local tripped = {}
local touched = {}
for i = 6, #ARGV, 7 do
  local id, json, number, status, next_at, pause = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local err = ARGV[i + 6]
  local dkey = tag .. ':dlv:' .. id
  local ep = redis.call('HGET', dkey, 'endpoint')
  if not ep then
    table.insert(out, 0)
  else
    local duekey = tag .. ':due:' .. ep
    redis.call('ZREM', tag .. ':lease:' .. ep, id)
    local akey = dkey .. ':attempts'
    redis.call('RPUSH', akey, json)
    -- The attempts expire with their delivery.
    local ttl = redis.call('TTL', dkey)
    redis.call('EXPIRE', akey, ttl > 0 and ttl or retention)
    if status == 'retrying' then
      redis.call('ZADD', duekey, tonumber(next_at), id)
      redis.call('HSET', dkey, 'attempts', number, 'status', status, 'next_at', next_at)
    else
      redis.call('ZREM', duekey, id)
      redis.call('HSET', dkey, 'attempts', number, 'status', status)
      redis.call('HDEL', dkey, 'next_at')
    end
    -- An operator's attempt (redeliver, recover) is done: count it for its job.
    local manual = redis.call('HMGET', dkey, 'manual', 'job')
    if manual[1] then
      redis.call('HDEL', dkey, 'manual', 'job')
      if manual[2] then
        redis.call('HINCRBY', tag .. ':job:' .. manual[2], 'done', 1)
        if status == 'succeeded' then redis.call('HINCRBY', tag .. ':job:' .. manual[2], 'succeeded', 1) end
      end
    end
    local epkey = tag .. ':ep:' .. ep
    if status == 'succeeded' then
      redis.call('HDEL', epkey, 'fails', 'failing_since')
    elseif redis.call('EXISTS', epkey) == 1 then
      local fails = redis.call('HINCRBY', epkey, 'fails', 1)
      redis.call('HSETNX', epkey, 'failing_since', now)
      local since = tonumber(redis.call('HGET', epkey, 'failing_since'))
      if pause == '' and trip_after > 0 and fails >= trip_after and tonumber(now) - since >= trip_window
          and redis.call('HGET', epkey, 'paused') ~= '1' then
        pause = 'circuit breaker: ' .. fails .. ' attempts failed in a row; last error: ' .. err
        table.insert(tripped, ep)
        table.insert(tripped, redis.call('HGET', epkey, 'doc'))
        table.insert(tripped, fails)
        table.insert(tripped, since)
        table.insert(tripped, err)
      end
    end
    if pause ~= '' then
      redis.call('HSET', epkey, 'paused', '1', 'paused_reason', pause, 'paused_at', now)
    end
    touched[ep] = true
    table.insert(out, 1)
  end
end
-- A slot was freed or a retry scheduled: the endpoint is ready at its earliest due delivery.
for ep in pairs(touched) do
  local head = redis.call('ZRANGE', tag .. ':due:' .. ep, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', ready, ep)
  else
    redis.call('ZADD', ready, head[2], ep)
  end
end
return {out, tripped}
