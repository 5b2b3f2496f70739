-- Record attempts and what follows each, atomically, for a batch of deliveries.
-- Also runs the circuit breaker (queues.lua).
-- (`push`, `refresh`, `tally` and `breaker` come from queues.lua, prepended when the script is loaded.)
-- KEYS[1] = ready zset
-- ARGV[1] = partition tag, ARGV[2] = now (ms),
-- ARGV[3] = trip_after (0: no breaker), ARGV[4] = trip_window (ms),
-- ARGV[5] = the shipping backlog's cap (0: history is not shipped; see ship.rs)
-- then 9 per attempt: delivery id, attempt JSON, attempt number,
--   new status (succeeded | retrying | failed), next due (ms, for retrying), pause reason ('' for none),
--   error ('' when it succeeded), manual ('1' for an operator's attempt),
--   when the delivery expires (ms; its attempts expire with it)
-- Lease and due-queue updates are gathered per endpoint and written with one
-- variadic command each.
-- Returns {results, tripped}: one integer per attempt (1, or 0 when the delivery
-- no longer exists), and 5 per endpoint the breaker paused:
-- endpoint id, endpoint doc, failures, failing since (ms), last error.
local ready, tag = KEYS[1], ARGV[1]
local now = ARGV[2]
local trip_after, trip_window = tonumber(ARGV[3]), tonumber(ARGV[4])
local ship_cap = tonumber(ARGV[5])
local shipped = {}
local out = {}
local tripped = {}
local touched = {}
-- Per endpoint, over the batch: whether an attempt succeeded, and the failures since.
local streak = {}
-- Per endpoint: leases to drop, due entries to drop, due entries to (re)schedule.
local unlease, undue, redue = {}, {}, {}
for i = 6, #ARGV, 9 do
  local id, json, number, status, next_at, pause = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local err, is_manual, expires_at = ARGV[i + 6], ARGV[i + 7] == '1', ARGV[i + 8]
  local dkey = key_delivery(tag, id)
  local d = redis.call('HMGET', dkey, 'endpoint', 'job', 'workspace', 'event_id', 'type', 'created')
  local ep = d[1]
  if not ep then
    table.insert(out, 0)
  else
    push(unlease, ep, id)
    local akey = key_attempts(tag, id)
    -- The attempts expire with their delivery (set when the list is made).
    if redis.call('RPUSH', akey, json) == 1 then
      redis.call('PEXPIREAT', akey, expires_at)
    end
    if status == STATUS_RETRYING then
      push(redue, ep, next_at, id)
      redis.call('HSET', dkey, 'attempts', number, 'status', status, 'next_at', next_at)
    else
      push(undue, ep, id)
      redis.call('HSET', dkey, 'attempts', number, 'status', status)
      -- Only an earlier failed attempt or an operator's requeue leaves a next time.
      if is_manual or tonumber(number) > 1 then redis.call('HDEL', dkey, 'next_at') end
    end
    -- An operator's attempt (redeliver, recover) is done: count it for its job.
    if is_manual then
      local job = d[2]
      redis.call('HDEL', dkey, 'manual', 'job')
      if job then
        redis.call('HINCRBY', key_job(tag, job), 'done', 1)
        -- (The job's count of succeeded deliveries is the field named after the status.)
        if status == STATUS_SUCCEEDED then redis.call('HINCRBY', key_job(tag, job), STATUS_SUCCEEDED, 1) end
      end
    end
    tally(streak, ep, status == STATUS_SUCCEEDED, err)
    -- Only while the endpoint exists: a deleted one must not come back as a ghost hash.
    if pause ~= '' and redis.call('EXISTS', key_endpoint(tag, ep)) == 1 then
      redis.call('HSET', key_endpoint(tag, ep), 'paused', '1', 'paused_reason', pause, 'paused_at', now)
      redis.call('INCR', key_config(tag))
    end
    touched[ep] = true
    table.insert(out, 1)
    if ship_cap > 0 then
      table.insert(shipped, 'r')
      table.insert(shipped, cjson.encode({id, ep, d[3] or '', d[4] or '', d[5] or '', tonumber(d[6]) or 0, status, tonumber(number), json}))
    end
  end
end
-- Batches are at most a few hundred attempts, well within Lua's unpack limit.
for ep, ids in pairs(unlease) do
  redis.call('ZREM', key_leases(tag, ep), unpack(ids))
  -- (Leases of a deleted endpoint's workspace end by their score.)
  local ws = redis.call('HGET', key_endpoint(tag, ep), 'ws')
  if ws then redis.call('ZREM', key_workspace_leases(tag, ws), unpack(ids)) end
end
for ep, ids in pairs(undue) do
  redis.call('ZREM', key_due(tag, ep), unpack(ids))
end
for ep, pairs_ in pairs(redue) do
  redis.call('ZADD', key_due(tag, ep), unpack(pairs_))
end
if #shipped > 0 then
  redis.call('XADD', key_ship(tag), 'MAXLEN', '~', ship_cap, '*', unpack(shipped))
end
breaker(tag, streak, now, trip_after, trip_window, tripped)
-- A slot was freed or a retry scheduled: the endpoint is ready at its earliest due delivery.
for ep in pairs(touched) do
  refresh(tag, ready, ep)
end
return {out, tripped}
