-- Record first attempts, and acknowledge the entries whose deliveries are
-- all recorded, in one atomic step: nothing is acknowledged without its
-- record, and a crash before this step leaves the entry pending, to be read
-- again and sent with the same delivery ids.
-- Every delivery gets one member in its endpoint's history log. One whose
-- first attempt succeeded needs nothing more. One that outlives its first
-- attempt (the attempt failed, its endpoint is paused, it cannot be sent
-- from here) gets its durable state here, and the retry machinery
-- (claim.lua, record.lua) takes it from there. (One that waits for a slot
-- is not settled here: it goes to its endpoint's lane, `Store::enter_lanes`.)
--
-- A delivery is one of (its `lane` argument):
-- - '' (from the stream): its entry is pending in the group. Fenced: only
--   the consumer that owns the entry settles it; deliveries of an entry
--   another daemon has taken over (this one was too slow) are skipped, and
--   the entry is not acknowledged: its new owner sends and settles it.
-- - a lease (digits): it was taken from its endpoint's lane with that lease
--   (take.lua). Fenced: recorded only while its item is still taken with
--   that lease; it leaves the taken set.
--
-- Key types are checked before anything is written: a delivery with a key
-- of the wrong type is set aside (dead-lettered with the reason) and the
-- rest written; a shared key of the wrong type fails the call with nothing
-- written, so the caller may retry or split the batch safely.
-- (`push`, `tally`, `breaker`, `pause_gone`, `expect_type` and `wrong_type`
-- come from queues.lua.)
--
-- KEYS[1] = stream, KEYS[2] = ready zset, KEYS[3] = configuration version,
-- KEYS[4] = logs hash, KEYS[5] = shipping backlog stream, KEYS[6] = dead-letter stream,
-- KEYS[7] = lanes hash, KEYS[8] = the partition's reclaim count,
-- then SETTLE_ENDPOINT_KEYS per endpoint (hash, log, due, held, lane, taken),
-- then SETTLE_DURABLE_KEYS per delivery that gets durable state (status
--   not succeeded): delivery hash, attempts list, envelope, its key's
--   order zset and read list (ordered deliveries only; others name unused
--   keys); in the order of the deliveries.
-- ARGV[1] = group, ARGV[2] = consumer, ARGV[3] = retention (s),
-- ARGV[4] = trip_after (0: no breaker), ARGV[5] = trip_window (ms),
-- ARGV[6] = the shipping backlog's cap (0: history is not shipped; see ship.rs),
-- ARGV[7] = endpoints, ARGV[8] = deliveries (full), ARGV[9] = the dead-letter stream's cap,
-- ARGV[10] = groups of short deliveries, ARGV[11] = the reclaim count when
-- the oldest of the entries was read, then per endpoint: id, workspace;
-- then the short deliveries (first attempts from the stream that
--   succeeded, the common case, told in few arguments), grouped by
--   endpoint: endpoint (1-based), n, then n pairs (created (ms), log
--   member), in the order ZADD takes them (a member starts with its
--   entry id and `_`);
-- then SETTLE_FIELDS per delivery: entry id, endpoint (1-based, in the list
--   above), delivery id, event id, event type, created (ms), log member,
--   status, attempt JSON ('' when none was made, '-' when it succeeded),
--   due in (ms from now, for retrying and pending; times are Redis's
--   clock, as leases are), pause reason ('' for none), error ('' for none),
--   envelope ('' when the delivery ends here), traceparent and tracestate
--   ('' for none: kept in durable state, so later attempts continue the
--   producer's trace), lane ('', or the lease it was taken with), its lane
--   item ('' unless taken from a lane), ordering key ('' unless `waiting`:
--   an ordered delivery, which joins its key's order zset and leaves its
--   read list here, and is due now only if it is the key's head);
-- then the ids of the entries to acknowledge.
-- Returns {tripped, skipped, set aside}: 5 values per endpoint the breaker
-- or a 410 paused (see queues.lua), the deliveries skipped because another
-- daemon has their entry (or lane item) now, and those set aside.
local stream, ready, lanes = KEYS[1], KEYS[2], KEYS[7]
local group, consumer, retention, now = ARGV[1], ARGV[2], ARGV[3], clock_ms()
local trip_after, trip_window = tonumber(ARGV[4]), tonumber(ARGV[5])
local ship_cap, n_eps, count = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local dead_cap, n_groups = ARGV[9], tonumber(ARGV[10])
-- The groups of short deliveries: endpoint, count, where their pairs start.
local groups = {}
local first_delivery = 12 + 2 * n_eps
for g = 1, n_groups do
  local n = tonumber(ARGV[first_delivery + 1])
  groups[g] = { e = tonumber(ARGV[first_delivery]), n = n, at = first_delivery + 2 }
  first_delivery = first_delivery + 2 + 2 * n
end
local first_ack = first_delivery + SETTLE_FIELDS * count

-- Which entries this consumer still owns (asked once per entry). Unless
-- no daemon has taken entries over since these were read (the reclaim
-- count is as it was then): then they are all still this consumer's, and
-- nobody is asked.
local taken_over = tonumber(redis.call('GET', KEYS[8]) or '0') > tonumber(ARGV[11])
local owned = {}
local function owns(entry)
  if not taken_over then return true end
  local o = owned[entry]
  if o == nil then
    o = #redis.call('XPENDING', stream, group, entry, entry, 1, consumer) > 0
    owned[entry] = o
  end
  return o
end

-- The keys of endpoint `e`, and of the n-th durable delivery.
local function ep_key(e, k) return KEYS[8 + (e - 1) * SETTLE_ENDPOINT_KEYS + k] end
local durable_base = 8 + n_eps * SETTLE_ENDPOINT_KEYS
local function durable_key(n, k) return KEYS[durable_base + (n - 1) * SETTLE_DURABLE_KEYS + k] end
-- Endpoint id -> its hash, as declared (for the circuit breaker).
local ep_hash = {}
for e = 1, n_eps do ep_hash[ARGV[10 + 2 * e]] = ep_key(e, 1) end

local function is_durable(status)
  return status ~= STATUS_SUCCEEDED
end
local function is_taken(lane)
  return lane ~= ''
end

-- First pass: ownership (or the lane lease) and key types, before any write.
-- (Per endpoint, its keys are looked at once: `ep_bad`.)
local skipped = 0
local durable = 0
local refused = {}
local mine = {}
local ep_bad, ep_queues_bad = {}, {}
expect_type(stream, 'stream')
expect_type(KEYS[6], 'stream')
expect_type(lanes, 'hash')
for _, g in ipairs(groups) do
  local e = g.e
  if ep_bad[e] == nil then
    ep_bad[e] = wrong_type({ { ep_key(e, 1), 'hash' }, { ep_key(e, 2), 'zset' }, { ep_key(e, 6), 'zset' } }) or false
  end
end
for i = first_delivery, first_ack - 1, SETTLE_FIELDS do
  local e, status, lane = tonumber(ARGV[i + 1]), ARGV[i + 7], ARGV[i + 15]
  local durable_now = is_durable(status)
  if durable_now then durable = durable + 1 end
  if ep_bad[e] == nil then
    ep_bad[e] = wrong_type({ { ep_key(e, 1), 'hash' }, { ep_key(e, 2), 'zset' }, { ep_key(e, 6), 'zset' } }) or false
  end
  if is_taken(lane) then
    mine[i] = not ep_bad[e]
      and tonumber(redis.call('ZSCORE', ep_key(e, 6), ARGV[i + 16]) or '-1') == tonumber(lane)
  else
    mine[i] = owns(ARGV[i])
  end
  if mine[i] then
    local bad = ep_bad[e]
    if not bad and durable_now then
      if ep_queues_bad[e] == nil then
        ep_queues_bad[e] = wrong_type({ { ep_key(e, 3), 'zset' }, { ep_key(e, 4), 'set' } }) or false
      end
      bad = ep_queues_bad[e] or wrong_type({ { durable_key(durable, 1), 'hash' },
        { durable_key(durable, 2), 'list' }, { durable_key(durable, 3), 'string' } })
    end
    if bad then refused[i] = bad end
  end
end

local shipped = {}
local set_aside = 0
local streak, tripped = {}, {}
-- Log members, lane items and due entries, gathered per endpoint for one
-- variadic command each.
local logged, due, held, untaken = {}, {}, {}, {}
local envelopes = {}
local ep_exists = {}
-- A delivery that cannot be recorded (its keys hold other types) goes to
-- the dead-letter stream with what names it.
local function set_aside_one(entry, why, ...)
  set_aside = set_aside + 1
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', dead_cap, '*', 'reason', 'unrecordable',
    'message', 'the delivery could not be recorded: ' .. why, 'entry_id', entry,
    'stream', stream, ...)
end
-- A recorded delivery's log member, to be shipped to the history (when it is).
local function ship(ep, ws, member)
  if ship_cap > 0 then
    table.insert(shipped, 'l' .. ep .. ' ' .. ws)
    table.insert(shipped, member)
  end
end
-- The short ones: first attempts from the stream that succeeded. In the
-- common case (entries all still ours, the endpoint's keys sound) a
-- group is one ZADD of its arguments as they came, with nothing done per
-- delivery here; else one by one.
for _, g in ipairs(groups) do
  local e, n, at = g.e, g.n, g.at
  local ep, ws = ARGV[10 + 2 * e], ARGV[11 + 2 * e]
  if not taken_over and not ep_bad[e] and n > 0 then
    if not logged[e] then logged[e] = {} end
    redis.call('ZADD', ep_key(e, 2), unpack(ARGV, at, at + 2 * n - 1))
    if ship_cap > 0 then
      for k = 0, n - 1 do ship(ep, ws, ARGV[at + 2 * k + 1]) end
    end
    tally(streak, ep, true, '')
  else
    for k = 0, n - 1 do
      local created, member = ARGV[at + 2 * k], ARGV[at + 2 * k + 1]
      local entry = string.match(member, '^[^_]*')
      if not owns(entry) then
        skipped = skipped + 1
      elseif ep_bad[e] then
        set_aside_one(entry, ep_bad[e], 'endpoint', ep, 'workspace', ws, 'status', STATUS_SUCCEEDED)
      else
        push(logged, e, created, member)
        ship(ep, ws, member)
        tally(streak, ep, true, '')
      end
    end
  end
end
durable = 0
for i = first_delivery, first_ack - 1, SETTLE_FIELDS do
  local entry, e, id, evid, evtype = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local created, member, status, attempt = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local due_in, pause, err, envelope = tonumber(ARGV[i + 9]), ARGV[i + 10], ARGV[i + 11], ARGV[i + 12]
  local traceparent, tracestate, lane, item = ARGV[i + 13], ARGV[i + 14], ARGV[i + 15], ARGV[i + 16]
  local okey = ARGV[i + 17]
  local ep, ws = ARGV[10 + 2 * e], ARGV[11 + 2 * e]
  -- (Whether durable keys were declared for it, whatever it becomes below.)
  local declared = is_durable(status)
  if declared then durable = durable + 1 end
  if not mine[i] then
    skipped = skipped + 1
  elseif refused[i] then
    set_aside_one(entry, refused[i], 'delivery', id, 'endpoint', ep, 'workspace', ws,
      'event_id', evid, 'status', status)
    if is_taken(lane) then push(untaken, e, item) end
  else
    local epkey = ep_key(e, 1)
    local exists = ep_exists[e]
    if exists == nil then
      exists = redis.call('EXISTS', epkey) == 1
      ep_exists[e] = exists
    end
    if is_taken(lane) then push(untaken, e, item) end
    -- Held, or waiting for a slot, on an endpoint deleted meanwhile: it ends here.
    local reason = nil
    if not exists and (status == STATUS_HELD or status == STATUS_PENDING or status == STATUS_WAITING) then
      status, reason = STATUS_FAILED, 'endpoint_deleted'
    end
    push(logged, e, created, member)
    ship(ep, ws, member)
    if attempt ~= '' then tally(streak, ep, status == STATUS_SUCCEEDED, err) end
    if declared and status ~= STATUS_SUCCEEDED then
      local dkey, akey, envkey = durable_key(durable, 1), durable_key(durable, 2), durable_key(durable, 3)
      if envelope ~= '' and not envelopes[envkey] then
        redis.call('SET', envkey, envelope, 'EX', retention)
        envelopes[envkey] = true
      end
      redis.call('HSET', dkey, 'endpoint', ep, 'workspace', ws, 'event_id', evid,
        'type', evtype, 'status', status, 'attempts', (attempt ~= '' and attempt ~= '-') and '1' or '0',
        'created', created)
      if reason then redis.call('HSET', dkey, 'reason', reason) end
      if traceparent ~= '' then
        redis.call('HSET', dkey, 'tp', traceparent, 'ts', tracestate)
      end
      redis.call('EXPIRE', dkey, retention)
      if attempt ~= '' and attempt ~= '-' then
        redis.call('RPUSH', akey, attempt)
        redis.call('EXPIRE', akey, retention)
      end
      if status == STATUS_WAITING then
        local order, reads = durable_key(durable, 4), durable_key(durable, 5)
        local m = order_member(entry)
        redis.call('HSET', dkey, 'okey', okey)
        redis.call('LREM', reads, 1, entry)
        redis.call('ZADD', order, 0, m)
        redis.call('EXPIRE', order, retention)
        if redis.call('ZRANGE', order, 0, 0)[1] == m then
          local next_at = string.format('%d', now)
          redis.call('HSET', dkey, 'next_at', next_at)
          push(due, e, next_at, id)
        end
      elseif status == STATUS_HELD then
        push(held, e, id)
      elseif status == STATUS_RETRYING or status == STATUS_PENDING then
        local next_at = string.format('%d', now + math.max(0, due_in))
        redis.call('HSET', dkey, 'next_at', next_at)
        push(due, e, next_at, id)
      end
    end
    if pause ~= '' then pause_gone(epkey, ep, pause, now, KEYS[3], tripped) end
  end
end
for e, members in pairs(logged) do
  local log = ep_key(e, 2)
  if #members > 0 then redis.call('ZADD', log, unpack(members)) end
  -- The log lives a retention past its newest delivery (a deleted endpoint's goes then).
  redis.call('EXPIRE', log, retention)
  redis.call('HSET', KEYS[4], ARGV[10 + 2 * e], ARGV[11 + 2 * e])
end
for e, items in pairs(untaken) do
  redis.call('ZREM', ep_key(e, 6), unpack(items))
  if redis.call('EXISTS', ep_key(e, 5)) == 0 and redis.call('EXISTS', ep_key(e, 6)) == 0 then
    redis.call('HDEL', lanes, ARGV[10 + 2 * e])
  end
end
for e, ids in pairs(held) do
  redis.call('SADD', ep_key(e, 4), unpack(ids))
end
for e, pairs_ in pairs(due) do
  local duekey = ep_key(e, 3)
  redis.call('ZADD', duekey, unpack(pairs_))
  local head = redis.call('ZRANGE', duekey, 0, 0, 'WITHSCORES')
  redis.call('ZADD', ready, 'LT', head[2], ARGV[10 + 2 * e])
end
if #shipped > 0 then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ship_cap, '*', unpack(shipped))
end
if not taken_over then
  -- (In slices: unpack has a limit.)
  for i = first_ack, #ARGV, 4000 do
    redis.call('XACK', stream, group, unpack(ARGV, i, math.min(#ARGV, i + 3999)))
  end
else
  local acks = {}
  for i = first_ack, #ARGV do
    if owns(ARGV[i]) then acks[#acks + 1] = ARGV[i] end
  end
  if #acks > 0 then
    redis.call('XACK', stream, group, unpack(acks))
  end
end
breaker(ep_hash, streak, now, trip_after, trip_window, tripped, KEYS[3])
return { tripped, skipped, set_aside }
