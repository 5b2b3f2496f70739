-- Record deliveries made straight from the stream, and acknowledge the
-- entries whose deliveries are all recorded, in one atomic step: nothing is
-- acknowledged without its record, and a crash before this step leaves the
-- entry pending, to be read again and sent with the same delivery ids.
-- Every delivery gets one member in its endpoint's history log. One whose
-- first attempt succeeded needs nothing more. One that outlives it (the
-- attempt failed, its endpoint is paused, it waits for a slot) gets its
-- durable state here, and the retry machinery (claim.lua, record.lua) takes
-- it from there.
-- (`push`, `tally` and `breaker` come from queues.lua, prepended when the script is loaded.)
-- KEYS[1] = stream
-- ARGV[1] = group, ARGV[2] = partition tag, ARGV[3] = retention (s), ARGV[4] = now (ms),
-- ARGV[5] = trip_after (0: no breaker), ARGV[6] = trip_window (ms), ARGV[7] = how many deliveries,
-- ARGV[8] = the shipping backlog's cap (0: history is not shipped; see ship.rs)
-- then 16 per delivery: delivery id, endpoint, workspace, event id, event type,
--   created (ms), log member, status, attempt JSON ('' when none was made),
--   next due (ms, for retrying and pending), pause reason ('' for none),
--   error ('' for none), envelope key, envelope ('' when the delivery ends here),
--   the producer's traceparent and tracestate ('' for none: kept in durable
--   state, so later attempts continue the producer's trace)
-- then the ids of the entries to acknowledge.
-- Returns the endpoints the breaker paused, 5 values each (see queues.lua).
local stream, group, tag = KEYS[1], ARGV[1], ARGV[2]
local retention, now = ARGV[3], ARGV[4]
local trip_after, trip_window, count = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local ship_cap = tonumber(ARGV[8])
local shipped = {}
local streak, tripped = {}, {}
-- Log members and due entries, gathered per key for one variadic command each.
local logged, due, held = {}, {}, {}
local workspaces = {}
local envelopes = {}
local i = 9
for _ = 1, count do
  local id, ep, ws, evid, evtype = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local created, member, status, attempt = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local next_at, pause, err, envkey, envelope = ARGV[i + 9], ARGV[i + 10], ARGV[i + 11], ARGV[i + 12], ARGV[i + 13]
  local traceparent, tracestate = ARGV[i + 14], ARGV[i + 15]
  i = i + 16
  push(logged, ep, created, member)
  if ship_cap > 0 then
    table.insert(shipped, 'l' .. ep .. ' ' .. ws)
    table.insert(shipped, member)
  end
  workspaces[ep] = ws
  if attempt ~= '' then tally(streak, ep, status == STATUS_SUCCEEDED, err) end
  if status ~= STATUS_SUCCEEDED then
    if envelope ~= '' and not envelopes[envkey] then
      redis.call('SET', envkey, envelope, 'EX', retention)
      envelopes[envkey] = true
    end
    local dkey = key_delivery(tag, id)
    redis.call('HSET', dkey, 'endpoint', ep, 'workspace', ws, 'event_id', evid, 'event_key', envkey,
      'type', evtype, 'status', status, 'attempts', attempt ~= '' and '1' or '0', 'created', created)
    if traceparent ~= '' then
      redis.call('HSET', dkey, 'tp', traceparent, 'ts', tracestate)
    end
    redis.call('EXPIRE', dkey, retention)
    if attempt ~= '' then
      local akey = key_attempts(tag, id)
      redis.call('RPUSH', akey, attempt)
      redis.call('EXPIRE', akey, retention)
    end
    if status == STATUS_HELD then
      push(held, ep, id)
    elseif status == STATUS_RETRYING or status == STATUS_PENDING then
      redis.call('HSET', dkey, 'next_at', next_at)
      push(due, ep, next_at, id)
    end
  end
  -- A 410 Gone pauses the endpoint (only while it exists: no ghost hash).
  if pause ~= '' and redis.call('EXISTS', key_endpoint(tag, ep)) == 1 then
    redis.call('HSET', key_endpoint(tag, ep), 'paused', '1', 'paused_reason', pause, 'paused_at', now)
    redis.call('INCR', key_config(tag))
  end
end
for ep, members in pairs(logged) do
  local log = key_log(tag, ep)
  redis.call('ZADD', log, unpack(members))
  -- The log lives a retention past its newest delivery (a deleted endpoint's goes then).
  redis.call('EXPIRE', log, retention)
  redis.call('HSET', key_logs(tag), ep, workspaces[ep])
end
for ep, ids in pairs(held) do
  redis.call('SADD', key_held(tag, ep), unpack(ids))
end
for ep, pairs_ in pairs(due) do
  redis.call('ZADD', key_due(tag, ep), unpack(pairs_))
  local head = redis.call('ZRANGE', key_due(tag, ep), 0, 0, 'WITHSCORES')
  redis.call('ZADD', key_ready(tag), 'LT', head[2], ep)
end
if #shipped > 0 then
  redis.call('XADD', key_ship(tag), 'MAXLEN', '~', ship_cap, '*', unpack(shipped))
end
if i <= #ARGV then
  redis.call('XACK', stream, group, unpack(ARGV, i))
end
breaker(tag, streak, now, trip_after, trip_window, tripped)
return tripped
