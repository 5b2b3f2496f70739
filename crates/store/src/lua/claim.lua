-- Claim due deliveries, endpoint by endpoint: each ready endpoint gets a fair
-- share of the batch and never more in flight than its max_concurrency (counted
-- across every daemon by its lease set) nor more per second than its rate_limit. A claimed delivery's due time is pushed
-- forward by the lease, so no other worker takes it while its request runs.
-- Deliveries of a paused endpoint move to its held set; those of a deleted
-- endpoint, or whose event expired, fail.
-- (`refresh` comes from queues.lua, prepended when the script is loaded.)
-- KEYS[1] = ready zset
-- ARGV[1] = partition tag, ARGV[2] = lease (ms), ARGV[3] = limit,
-- ARGV[4] = default max concurrency per endpoint, ARGV[5] = the most any endpoint
-- may have in flight, ARGV[6] = the most a workspace may have in flight (over all
-- its endpoints, counted by its own lease set)
-- ARGV[7] = the lease token: written into each claimed delivery's hash, and
-- required by record.lua, so only the latest claim of a delivery records it
-- Returns a flat list, per endpoint with claimed deliveries: endpoint id, endpoint doc,
-- count, then CLAIM_FIELDS per delivery: id, attempts so far, created (ms), event id,
-- event type, envelope key, envelope (nil when an earlier delivery of this reply
-- carried the same event's), manual ('1' when an operator asked for this attempt),
-- traceparent, tracestate, recovery job ('' for none).
-- The doc and each envelope travel once per reply, not once per delivery.
local ready, tag, token = KEYS[1], ARGV[1], ARGV[7]
-- Lease expiry is judged by Redis's clock, not the calling daemon's: a daemon
-- whose clock runs ahead must not take over leases that are still live.
local now = clock_ms()
local lease, limit, default_cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local max_cap, ws_cap = tonumber(ARGV[5]), tonumber(ARGV[6])
-- Per workspace lease key of this call: attempts in flight now.
local ws_used = {}
-- Most deliveries one call moves off a deleted or paused endpoint's queue.
local CHUNK = 500
local out = {}
local budget = limit
local sent = {}
-- Formatted once: a number argument costs Redis a printf per use.
local leased_until = string.format('%d', now + lease)

local function fail(id, reason)
  redis.call('HSET', key_delivery(tag, id), 'status', STATUS_FAILED, 'reason', reason)
end

local endpoints = redis.call('ZRANGEBYSCORE', ready, '-inf', now, 'LIMIT', 0, limit)
local share = math.max(1, math.ceil(limit / math.max(1, #endpoints)))
for _, ep in ipairs(endpoints) do
  if budget <= 0 then break end
  local duekey, leasekey = key_due(tag, ep), key_leases(tag, ep)
  redis.call('ZREMRANGEBYSCORE', leasekey, '-inf', now)
  local e = redis.call('HMGET', key_endpoint(tag, ep), 'doc', 'paused', 'max_concurrency', 'rate_limit', 'ws')
  if not e[1] then
    -- In chunks, so no call runs long enough to make Redis answer BUSY:
    -- the endpoint stays ready until its queue is empty.
    local ids = redis.call('ZRANGE', duekey, 0, CHUNK - 1)
    for _, id in ipairs(ids) do
      if redis.call('EXISTS', key_delivery(tag, id)) == 1 then fail(id, 'endpoint_deleted') end
    end
    if #ids > 0 then redis.call('ZREM', duekey, unpack(ids)) end
    if #ids < CHUNK then
      redis.call('DEL', duekey, leasekey)
      redis.call('ZREM', ready, ep)
    end
  elseif e[2] == '1' then
    local ids = redis.call('ZRANGEBYSCORE', duekey, '-inf', now, 'LIMIT', 0, CHUNK)
    for _, id in ipairs(ids) do
      if redis.call('EXISTS', key_delivery(tag, id)) == 1 then
        redis.call('HSET', key_delivery(tag, id), 'status', STATUS_HELD)
        redis.call('SADD', key_held(tag, ep), id)
      end
    end
    if #ids > 0 then redis.call('ZREM', duekey, unpack(ids)) end
    refresh(ready, duekey, ep)
  else
    local cap = math.min(tonumber(e[3]) or default_cap, max_cap)
    -- Endpoints written before the hash carried `ws` name it in their document.
    local wskey = key_workspace_leases(tag, e[5] or cjson.decode(e[1]).workspace)
    local wsused = ws_used[wskey]
    if not wsused then
      redis.call('ZREMRANGEBYSCORE', wskey, '-inf', now)
      wsused = redis.call('ZCARD', wskey)
    end
    local take = math.min(cap - redis.call('ZCARD', leasekey), share, budget, ws_cap - wsused)
    -- Rate limit: at most `rate` attempts per second (fixed one-second windows).
    local rate, rlkey, used = tonumber(e[4]), nil, 0
    if rate then
      rlkey = key_endpoint_rate(tag, ep .. ':' .. math.floor(now / 1000))
      used = tonumber(redis.call('GET', rlkey) or '0')
      take = math.min(take, rate - used)
    end
    local claimed = 0
    if take > 0 then
      local group = #out
      local leased = {}
      for _, id in ipairs(redis.call('ZRANGEBYSCORE', duekey, '-inf', now, 'LIMIT', 0, take)) do
        local dkey = key_delivery(tag, id)
        local d = redis.call('HMGET', dkey, 'workspace', 'attempts', 'created', 'event_id', 'type', 'manual', 'tp', 'ts', 'job')
        -- The envelope's key is computed from (workspace, event id), never read from stored data.
        local evkey = d[1] and d[4] and key_envelope(tag, d[1], d[4])
        local envelope = false
        if evkey and not sent[evkey] then
          envelope = redis.call('GET', evkey)
        end
        if not evkey then
          redis.call('ZREM', duekey, id)
        elseif not envelope and not sent[evkey] then
          redis.call('ZREM', duekey, id)
          fail(id, 'event_expired')
        else
          sent[evkey] = true
          leased[#leased + 1] = leased_until
          leased[#leased + 1] = id
          claimed = claimed + 1
          if claimed == 1 then
            out[#out + 1] = ep
            out[#out + 1] = e[1]
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
          redis.call('HSET', dkey, 'lease', token)
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
