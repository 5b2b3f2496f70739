-- Claim due deliveries, endpoint by endpoint: each ready endpoint gets a fair
-- share of the batch and never more in flight than its max_concurrency
-- (counted across every daemon by its lease set) nor more per second than
-- its rate_limit. A claimed delivery's due time is pushed forward by the
-- lease, so no other worker takes it while its request runs. Deliveries of
-- a paused endpoint move to its held set; those of a deleted endpoint, or
-- whose event expired, fail.
--
-- Every key is declared. The caller reads first (ready.lua, then the due
-- candidates of each ready endpoint and their events) and names here the
-- keys of those candidates; this step checks each is still due and writes.
-- (`refresh` comes from queues.lua, prepended when the script is loaded.)
--
-- An ordered endpoint's key head comes due with status `waiting`: it is
-- started (status `pending`, its sequence number given) only once no
-- earlier entry of its key is still unordered (in the key's read list, and
-- pending in the group: an entry acknowledged without being ordered is
-- dropped from the list); else it is looked at again 50 ms later.
--
-- KEYS[1] = ready zset, KEYS[2] = stream, then CLAIM_ENDPOINT_KEYS per
--   endpoint (hash, due, leases, held, workspace leases, this second's rate
--   counter), then CLAIM_DELIVERY_KEYS per candidate (delivery hash,
--   envelope)
-- ARGV[1] = lease (ms), ARGV[2] = limit, ARGV[3] = default max concurrency per
-- endpoint, ARGV[4] = the most any endpoint may have in flight, ARGV[5] = the
-- most a workspace may have in flight (over all its endpoints, counted by its
-- own lease set), ARGV[6] = the lease token (written into each claimed
-- delivery's hash and required by record.lua, so only the latest claim of a
-- delivery records it), ARGV[7] = group, ARGV[8], ARGV[9] = a key's read
-- list name around `<byte length>:<workspace>` (see read.lua),
-- ARGV[10] = the prefix of order zsets (`<prefix><endpoint>:<key>`),
-- ARGV[11] = the prefix of sequence counters (`<prefix><endpoint>:<key>`),
-- ARGV[12] = how long a counter lives past its last use (s),
-- ARGV[13] = endpoints, then per endpoint: id, candidates;
-- then the candidates' ids, endpoint by endpoint.
-- Returns a flat list, per endpoint with claimed deliveries: endpoint id, endpoint doc,
-- count, then CLAIM_FIELDS per delivery: id, attempts so far, created (ms), event id,
-- event type, envelope key, envelope (nil when an earlier delivery of this reply
-- carried the same event's; an ordered delivery's, which keeps no copy, is
-- its stream entry's fields), manual ('1' when an operator asked for this attempt),
-- traceparent, tracestate, recovery job ('' for none), ordering key ('' for
-- none), sequence number ('' for none).
-- The doc and each envelope travel once per reply, not once per delivery.
local ready = KEYS[1]
-- Lease expiry is judged by Redis's clock, not the calling daemon's: a daemon
-- whose clock runs ahead must not take over leases that are still live.
local now = clock_ms()
local lease, limit, default_cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local max_cap, ws_cap, token = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local stream, group, reads_before, reads_after = KEYS[2], ARGV[7], ARGV[8], ARGV[9]
local order_prefix, seq_prefix, seq_ttl = ARGV[10], ARGV[11], ARGV[12]
local n_eps = tonumber(ARGV[13])
-- Per workspace lease key of this call: attempts in flight now.
local ws_used = {}
local out = {}
local budget = limit
local sent = {}
-- Formatted once: a number argument costs Redis a printf per use.
local leased_until = string.format('%d', now + lease)
local share = math.max(1, math.ceil(limit / math.max(1, n_eps)))
local function ep_key(e, k) return KEYS[2 + (e - 1) * CLAIM_ENDPOINT_KEYS + k] end
local base = 2 + n_eps * CLAIM_ENDPOINT_KEYS
local function dl_key(c, k) return KEYS[base + (c - 1) * CLAIM_DELIVERY_KEYS + k] end

-- Whether candidate `id` is still in the due queue, due now.
local function still_due(duekey, id)
  local score = redis.call('ZSCORE', duekey, id)
  return score and tonumber(score) <= now
end

-- Whether the head `id` (of endpoint `ep`, key `okey`, workspace `ws`) may
-- start: it is still its key's head (an earlier entry ordered since takes
-- its place; it comes due again when that one ends: 'gone'), and no earlier
-- entry of its key still waits to be ordered (false: look again shortly).
local function may_start(ep, ws, okey, id)
  local entry = string.match(id, '^dlv_([^_]+)_')
  if redis.call('ZRANGE', order_prefix .. ep .. ':' .. okey, 0, 0)[1] ~= order_member(entry) then
    return 'gone'
  end
  local reads = reads_before .. #ws .. ':' .. ws .. reads_after .. okey
  while true do
    local first = redis.call('LINDEX', reads, 0)
    if not first or not entry_before(first, entry) then return true end
    if #redis.call('XPENDING', stream, group, first, first, 1) > 0 then return false end
    redis.call('LPOP', reads)
  end
end

local c = 0
local at = 14 + 2 * n_eps
for e = 1, n_eps do
  local ep, count = ARGV[12 + 2 * e], tonumber(ARGV[13 + 2 * e])
  local epkey, duekey, leasekey, heldkey, wskey, rlkey =
    ep_key(e, 1), ep_key(e, 2), ep_key(e, 3), ep_key(e, 4), ep_key(e, 5), ep_key(e, 6)
  local first_c = c
  c = c + count
  local ids = {}
  for i = 1, count do ids[i] = ARGV[at + i - 1] end
  at = at + count
  redis.call('ZREMRANGEBYSCORE', leasekey, '-inf', now)
  local doc = redis.call('HMGET', epkey, 'doc', 'paused', 'max_concurrency', 'rate_limit')
  if not doc[1] then
    -- Deleted: its queue fails, a chunk per call; the endpoint stays ready
    -- until its queue is empty.
    for i, id in ipairs(ids) do
      if redis.call('ZREM', duekey, id) == 1 and redis.call('EXISTS', dl_key(first_c + i, 1)) == 1 then
        redis.call('HSET', dl_key(first_c + i, 1), 'status', STATUS_FAILED, 'reason', 'endpoint_deleted')
      end
    end
    if redis.call('EXISTS', duekey) == 0 then
      redis.call('DEL', leasekey)
      redis.call('ZREM', ready, ep)
    end
  elseif doc[2] == '1' then
    for i, id in ipairs(ids) do
      local dkey = dl_key(first_c + i, 1)
      if still_due(duekey, id) then
        redis.call('ZREM', duekey, id)
        if redis.call('EXISTS', dkey) == 1 then
          redis.call('HSET', dkey, 'status', STATUS_HELD)
          redis.call('SADD', heldkey, id)
        end
      end
    end
    refresh(ready, duekey, ep)
  elseif budget > 0 then
    local cap = math.min(tonumber(doc[3]) or default_cap, max_cap)
    local wsused = ws_used[wskey]
    if not wsused then
      redis.call('ZREMRANGEBYSCORE', wskey, '-inf', now)
      wsused = redis.call('ZCARD', wskey)
    end
    local take = math.min(cap - redis.call('ZCARD', leasekey), share, budget, ws_cap - wsused)
    -- Rate limit: at most `rate` attempts per second (fixed one-second windows).
    local rate, used = tonumber(doc[4]), 0
    if rate then
      used = tonumber(redis.call('GET', rlkey) or '0')
      take = math.min(take, rate - used)
    end
    local claimed = 0
    local group = #out
    local leased = {}
    for i, id in ipairs(ids) do
      if claimed >= take then break end
      if still_due(duekey, id) then
        local dkey, evkey = dl_key(first_c + i, 1), dl_key(first_c + i, 2)
        local d = redis.call('HMGET', dkey, 'workspace', 'attempts', 'created', 'event_id', 'type', 'manual',
          'tp', 'ts', 'job', 'status', 'okey', 'seq')
        local envelope = false
        local start = true
        if d[1] and d[10] == STATUS_WAITING and d[11] then start = may_start(ep, d[1], d[11], id) end
        if d[1] and not sent[evkey] and start == true then
          envelope = redis.call('GET', evkey)
          -- An ordered delivery keeps no copy: its event's stream entry
          -- (returned as its fields; the caller builds the envelope).
          if not envelope and d[11] then
            local entry_id = string.match(id, '^dlv_([^_]+)_')
            local entry = redis.call('XRANGE', stream, entry_id, entry_id)[1]
            if entry then envelope = entry[2] end
          end
        end
        if start == 'gone' then
          redis.call('ZREM', duekey, id)
          redis.call('HDEL', dkey, 'next_at')
        elseif not start then
          redis.call('ZADD', duekey, now + 50, id)
        elseif not d[1] then
          redis.call('ZREM', duekey, id)
        elseif not envelope and not sent[evkey] then
          redis.call('ZREM', duekey, id)
          redis.call('HSET', dkey, 'status', STATUS_FAILED, 'reason', 'event_expired')
        else
          if d[11] and not d[12] then
            local seqkey = seq_prefix .. ep .. ':' .. d[11]
            d[12] = tostring(redis.call('INCR', seqkey))
            redis.call('EXPIRE', seqkey, seq_ttl)
            redis.call('HSET', dkey, 'seq', d[12])
          end
          if d[10] == STATUS_WAITING then redis.call('HSET', dkey, 'status', STATUS_PENDING) end
          sent[evkey] = true
          leased[#leased + 1] = leased_until
          leased[#leased + 1] = id
          claimed = claimed + 1
          if claimed == 1 then
            out[#out + 1] = ep
            out[#out + 1] = doc[1]
            out[#out + 1] = 0
          end
          out[#out + 1] = id
          out[#out + 1] = d[2]
          out[#out + 1] = d[3]
          out[#out + 1] = d[4]
          out[#out + 1] = d[5]
          out[#out + 1] = evkey
          out[#out + 1] = envelope
          out[#out + 1] = d[6] or ''
          out[#out + 1] = d[7] or ''
          out[#out + 1] = d[8] or ''
          out[#out + 1] = d[9] or ''
          out[#out + 1] = d[11] or ''
          out[#out + 1] = d[12] or ''
          redis.call('HSET', dkey, 'lease', token)
        end
      end
    end
    if claimed > 0 then
      budget = budget - claimed
      out[group + 3] = claimed
      -- Pushed forward by the lease, so no other worker takes them meanwhile.
      redis.call('ZADD', duekey, unpack(leased))
      redis.call('ZADD', leasekey, unpack(leased))
      redis.call('ZADD', wskey, unpack(leased))
      wsused = wsused + claimed
    end
    ws_used[wskey] = wsused
    if rate and claimed > 0 then
      redis.call('INCRBY', rlkey, claimed)
      redis.call('PEXPIRE', rlkey, 2000)
    end
    if redis.call('ZCARD', leasekey) >= cap then
      -- Full: back when an attempt is recorded (record refreshes it) or the first lease ends.
      local first = redis.call('ZRANGE', leasekey, 0, 0, 'WITHSCORES')
      redis.call('ZADD', ready, first[2], ep)
    elseif wsused >= ws_cap and redis.call('ZCARD', duekey) > 0 then
      -- The workspace is full: look again shortly, behind other tenants'
      -- endpoints that are ready now.
      redis.call('ZADD', ready, now + 200, ep)
    elseif rate and used + claimed >= rate then
      -- This second's budget is spent: back at the next second, or when the next delivery is due.
      local head = redis.call('ZRANGE', duekey, 0, 0, 'WITHSCORES')
      if #head == 0 then
        redis.call('ZREM', ready, ep)
      else
        redis.call('ZADD', ready, math.max(tonumber(head[2]), (math.floor(now / 1000) + 1) * 1000), ep)
      end
    else
      refresh(ready, duekey, ep)
    end
  end
end
return out
