-- Record attempts and what follows each, atomically, for a batch of deliveries.
-- Also runs the circuit breaker (queues.lua).
--
-- Fenced: an attempt is recorded only while its claim is still the
-- delivery's latest (the lease token the claim wrote into the delivery's
-- hash). A claim that outlived its lease and was taken over by another
-- claim records nothing: the newer claim's attempt is the one that counts.
-- Key types are checked before anything is written, as in settle.lua.
-- (`push`, `refresh`, `tally`, `breaker` and `expect_type` come from queues.lua.)
--
-- KEYS[1] = ready zset, KEYS[2] = configuration version, KEYS[3] = shipping backlog,
-- then RECORD_ENDPOINT_KEYS per endpoint (hash, leases, due, workspace leases),
-- then RECORD_KEYS per attempt (delivery hash, attempts list, its recovery
-- job's hash, its key's order zset (ordered deliveries; others name an unused key)).
-- ARGV[1] = trip_after (0: no breaker), ARGV[2] = trip_window (ms),
-- ARGV[3] = the shipping backlog's cap (0: history is not shipped; see ship.rs),
-- ARGV[4] = the prefix of delivery hashes (the next head of an ordered key
-- is named from it and its entry, see queues.lua),
-- ARGV[5] = endpoints, then their ids,
-- then RECORD_FIELDS per attempt: endpoint (1-based, in the list above),
--   delivery id, lease token, attempt JSON, attempt number,
--   new status (succeeded | retrying | failed), retry in (ms from now, for retrying),
--   pause reason ('' for none), error ('' when it succeeded),
--   manual ('1' for an operator's attempt), when the delivery expires (ms;
--   its attempts expire with it), recovery job ('' for none)
-- Lease and due-queue updates are gathered per endpoint and written with one
-- variadic command each. Times are Redis's clock (as leases are).
-- Returns {results, tripped}: one integer per attempt (1 recorded, 0 the
-- delivery no longer exists, -1 its claim was taken over, -2 refused), and 5 per
-- endpoint the breaker or a 410 paused (see queues.lua): endpoint id, endpoint doc, failures, failing
-- since (ms), last error.
local ready, config = KEYS[1], KEYS[2]
local now = clock_ms()
local trip_after, trip_window = tonumber(ARGV[1]), tonumber(ARGV[2])
local ship_cap, dlv, n_eps = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local first = 6 + n_eps
local function ep_key(e, k) return KEYS[3 + (e - 1) * RECORD_ENDPOINT_KEYS + k] end
local base = 3 + n_eps * RECORD_ENDPOINT_KEYS
local function key(n, k) return KEYS[base + (n - 1) * RECORD_KEYS + k] end
local ep_hash = {}
for e = 1, n_eps do ep_hash[ARGV[5 + e]] = ep_key(e, 1) end

-- First pass: which claims still hold, and key types, before any write. An
-- attempt with a key of the wrong type is refused: its delivery ends
-- `failed` (reason `unrecordable`) where its hash allows, leaves its queue,
-- and the rest is written.
local live = {}
local refused = {}
local n = 0
for i = first, #ARGV, RECORD_FIELDS do
  n = n + 1
  local e, token = tonumber(ARGV[i]), ARGV[i + 2]
  local dkey = key(n, 1)
  if not type_ok(dkey, 'hash') then
    live[n], refused[n] = -2, dkey .. ' holds a ' .. key_types[dkey]
  else
    local d = redis.call('HMGET', dkey, 'endpoint', 'lease')
    if not d[1] then
      live[n] = 0
    elseif d[2] ~= token then
      live[n] = -1
    else
      refused[n] = wrong_type({ { key(n, 2), 'list' }, { key(n, 3), 'hash' }, { ep_key(e, 1), 'hash' },
        { ep_key(e, 2), 'zset' }, { ep_key(e, 3), 'zset' }, { ep_key(e, 4), 'zset' } })
      live[n] = refused[n] and -2 or 1
    end
  end
end
for i = first, #ARGV, RECORD_FIELDS do
  local n_ = (i - first) / RECORD_FIELDS + 1
  if live[n_] == -2 then
    local e, id = tonumber(ARGV[i]), ARGV[i + 1]
    if type_ok(key(n_, 1), 'hash') and redis.call('EXISTS', key(n_, 1)) == 1 then
      redis.call('HSET', key(n_, 1), 'status', STATUS_FAILED, 'reason', 'unrecordable')
      redis.call('HDEL', key(n_, 1), 'lease', 'next_at')
    end
    for k = 2, RECORD_ENDPOINT_KEYS do
      if type_ok(ep_key(e, k), 'zset') then redis.call('ZREM', ep_key(e, k), id) end
    end
  end
end

local shipped = {}
local out = {}
local tripped = {}
local touched = {}
-- Per endpoint, over the batch: whether an attempt succeeded, and the failures since.
local streak = {}
-- Per endpoint: leases to drop, due entries to drop, due entries to (re)schedule.
local unlease, undue, redue = {}, {}, {}
n = 0
for i = first, #ARGV, RECORD_FIELDS do
  n = n + 1
  local e, id, json, number, status = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local retry_in, pause, err = tonumber(ARGV[i + 6]), ARGV[i + 7], ARGV[i + 8]
  local is_manual, expires_at, job = ARGV[i + 9] == '1', ARGV[i + 10], ARGV[i + 11]
  local ep = ARGV[5 + e]
  out[n] = live[n]
  if live[n] == 1 then
    local dkey, akey = key(n, 1), key(n, 2)
    local d = redis.call('HMGET', dkey, 'workspace', 'event_id', 'type', 'created', 'okey')
    push(unlease, e, id)
    -- The attempts expire with their delivery (set when the list is made).
    if redis.call('RPUSH', akey, json) == 1 then
      redis.call('PEXPIREAT', akey, expires_at)
    end
    redis.call('HDEL', dkey, 'lease')
    if status == STATUS_RETRYING then
      local next_at = string.format('%d', now + math.max(0, retry_in))
      push(redue, e, next_at, id)
      redis.call('HSET', dkey, 'attempts', number, 'status', status, 'next_at', next_at)
    else
      push(undue, e, id)
      redis.call('HSET', dkey, 'attempts', number, 'status', status)
      -- Only an earlier failed attempt, an operator's requeue or an ordered
      -- key's turn leaves a next time.
      if is_manual or tonumber(number) > 1 or d[5] then redis.call('HDEL', dkey, 'next_at') end
    end
    -- An operator's attempt (redeliver, recover) is done: count it for its job.
    if is_manual then
      redis.call('HDEL', dkey, 'manual', 'job')
      if job ~= '' then
        local jkey = key(n, 3)
        redis.call('HINCRBY', jkey, 'done', 1)
        -- (The job's count of succeeded deliveries is the field named after the status.)
        if status == STATUS_SUCCEEDED then redis.call('HINCRBY', jkey, STATUS_SUCCEEDED, 1) end
      end
    end
    -- An ordered delivery that ended (succeeded, or given up unless its
    -- endpoint holds the key then) leaves its key's order; when it was the
    -- head, the next delivery of the key is due now.
    if d[5] and status ~= STATUS_RETRYING then
      local order = key(n, 4)
      local hold = status == STATUS_FAILED
        and redis.call('HGET', ep_key(e, 1), 'ordering') == 'hold'
      if hold then
        redis.call('HSET', dkey, 'holding', '1')
      else
        local m = order_member(string.match(id, '^dlv_([^_]+)_'))
        local head = redis.call('ZRANGE', order, 0, 0)[1]
        if redis.call('ZREM', order, m) == 1 and head == m then
          order_next(order, dlv, ep, ep_key(e, 3), now)
        end
      end
    end
    tally(streak, ep, status == STATUS_SUCCEEDED, err)
    if pause ~= '' then pause_gone(ep_key(e, 1), ep, pause, now, config, tripped) end
    touched[e] = true
    if ship_cap > 0 then
      table.insert(shipped, 'r')
      table.insert(shipped, cjson.encode({id, ep, d[1] or '', d[2] or '', d[3] or '', tonumber(d[4]) or 0, status, tonumber(number), json}))
    end
  end
end
-- Batches are at most a few hundred attempts, well within Lua's unpack limit.
for e, ids in pairs(unlease) do
  redis.call('ZREM', ep_key(e, 2), unpack(ids))
  -- (Leases of a deleted endpoint's workspace end by their score.)
  redis.call('ZREM', ep_key(e, 4), unpack(ids))
end
for e, ids in pairs(undue) do
  redis.call('ZREM', ep_key(e, 3), unpack(ids))
end
for e, pairs_ in pairs(redue) do
  redis.call('ZADD', ep_key(e, 3), unpack(pairs_))
end
if #shipped > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ship_cap, '*', unpack(shipped))
end
breaker(ep_hash, streak, now, trip_after, trip_window, tripped, config)
-- A slot was freed or a retry scheduled: the endpoint is ready at its earliest due delivery.
for e in pairs(touched) do
  refresh(ready, ep_key(e, 3), ARGV[5 + e])
end
return {out, tripped}
