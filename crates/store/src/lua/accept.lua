-- Accept a batch of events for first attempts straight from the stream: no
-- delivery state is written here. The entries stay pending in the consumer
-- group (that is their lease) until settle.lua records their deliveries and
-- acknowledges them.
-- Per event, the (workspace, id) marker makes publishing idempotent: it holds
-- the id of the entry that first carried the event, so the same entry read
-- again (reclaimed after a crash) is accepted again, and another entry with
-- the same event is a duplicate, acknowledged here.
-- Per endpoint asked for, slots for first attempts: members of the
-- endpoint's and its workspace's lease sets, so the claim script counts them
-- beside the deliveries it leased itself (one limit across every daemon).
-- KEYS[1] = stream
-- ARGV[1] = group, ARGV[2] = partition tag, ARGV[3] = retention (s), ARGV[4] = now (ms),
-- ARGV[5] = how many events, ARGV[6] = slot lease (ms), ARGV[7] = slot holder (consumer)
-- then 4 per event: entry id, marker key, workspace, event type
-- then 6 per slot request: endpoint id, workspace, endpoint cap, workspace cap,
--   slots held now, slots wanted
-- Returns {configuration version, {1 accepted | 0 duplicate, per event}, {slots held, per request}}.
local stream, group, tag = KEYS[1], ARGV[1], ARGV[2]
local retention, now = ARGV[3], ARGV[4]
local n_events, slot_lease, holder = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local verdicts, acks, seen = {}, {}, {}
local i = 8
for _ = 1, n_events do
  local entry, marker, ws, evtype = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  local first = redis.call('SET', marker, entry, 'NX', 'GET', 'EX', retention)
  if not first or first == entry then
    verdicts[#verdicts + 1] = 1
    if not first then
      -- Event-type discovery (written once per workspace and type, below).
      local seen_key = key_types_seen(tag, ws)
      seen[seen_key] = seen[seen_key] or {}
      seen[seen_key][evtype] = (seen[seen_key][evtype] or 0) + 1
    end
  else
    verdicts[#verdicts + 1] = 0
    acks[#acks + 1] = entry
  end
end
if #acks > 0 then redis.call('XACK', stream, group, unpack(acks)) end
for key, types in pairs(seen) do
  for evtype, n in pairs(types) do
    redis.call('HINCRBY', key, 'n:' .. evtype, n)
    redis.call('HSET', key, 't:' .. evtype, now)
  end
end

local granted = {}
if i <= #ARGV then
  -- Lease expiry by Redis's clock, as in claim.lua.
  local clock = redis.call('TIME')
  local t = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  local until_ = string.format('%d', t + slot_lease)
  local swept = {}
  local function sweep(key)
    if not swept[key] then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', t)
      swept[key] = true
    end
  end
  while i <= #ARGV do
    local ep, ws = ARGV[i], ARGV[i + 1]
    local cap, ws_cap = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
    local held, want = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
    i = i + 6
    local eplease, wslease = key_leases(tag, ep), key_workspace_leases(tag, ws)
    sweep(eplease)
    sweep(wslease)
    local names = {}
    for n = 0, math.max(held, want) - 1 do
      names[n + 1] = '~' .. holder .. ':' .. ep .. ':' .. n
    end
    local have = 0
    if held > 0 then
      for _, score in ipairs(redis.call('ZMSCORE', eplease, unpack(names, 1, held))) do
        if score then have = have + 1 end
      end
    end
    local free = math.min(cap - redis.call('ZCARD', eplease), ws_cap - redis.call('ZCARD', wslease))
    local target = math.max(0, math.min(want, have + math.max(free, 0)))
    if target > 0 then
      local args = {}
      for n = 1, target do
        args[#args + 1] = until_
        args[#args + 1] = names[n]
      end
      redis.call('ZADD', eplease, unpack(args))
      redis.call('ZADD', wslease, unpack(args))
    end
    if held > target then
      redis.call('ZREM', eplease, unpack(names, target + 1, held))
      redis.call('ZREM', wslease, unpack(names, target + 1, held))
      -- Slots given back: deliveries waiting in the due queue may go now.
      if redis.call('EXISTS', key_due(tag, ep)) == 1 then
        redis.call('ZADD', key_ready(tag), 'LT', t, ep)
      end
    end
    granted[#granted + 1] = target
  end
end
return { tonumber(redis.call('GET', key_config(tag)) or '0'), verdicts, granted }
