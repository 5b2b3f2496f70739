-- Slots for first attempts: per endpoint asked for, members of the
-- endpoint's and its workspace's lease sets, so the claim script counts them
-- beside the deliveries it leased itself (one limit across every daemon).
-- A daemon asks for more when its batches need them, renews them while in
-- use, and gives them back when idle; a dead daemon's lapse with their lease.
-- While the endpoint has retries due, a quarter of its slots stay for them.
-- KEYS[1] = ready zset, then SLOT_KEYS per endpoint: its leases, its
--   workspace's leases, its due queue
-- ARGV[1] = slot lease (ms), ARGV[2] = slot holder (consumer)
-- then 6 per endpoint: endpoint id, workspace, endpoint cap, workspace cap,
--   slots held now, slots wanted
-- Returns the slots now held, per endpoint.
local slot_lease, holder = tonumber(ARGV[1]), ARGV[2]
local granted = {}
local i = 3
local n = 0
-- Lease expiry by Redis's clock, as in claim.lua.
local t = clock_ms()
local until_ = string.format('%d', t + slot_lease)
local swept = {}
local function sweep(key)
  if not swept[key] then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', t)
    swept[key] = true
  end
end
while i <= #ARGV do
  local ep = ARGV[i]
  local cap, ws_cap = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local held, want = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  i = i + 6
  local eplease, wslease, duekey = KEYS[2 + n * SLOT_KEYS], KEYS[3 + n * SLOT_KEYS], KEYS[4 + n * SLOT_KEYS]
  n = n + 1
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
  local in_flight = redis.call('ZCARD', eplease)
  local free = math.min(cap - in_flight, ws_cap - redis.call('ZCARD', wslease))
  local target = math.max(0, math.min(want, have + math.max(free, 0)))
  -- Retries due now keep a quarter of the endpoint's slots from first
  -- attempts (lanes would hold them all otherwise, and a retry wait forever).
  if #redis.call('ZRANGEBYSCORE', duekey, '-inf', t, 'LIMIT', 0, 1) > 0 then
    local room = cap - math.ceil(cap / 4) - (in_flight - have)
    target = math.max(0, math.min(target, room))
  end
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
    if redis.call('EXISTS', duekey) == 1 then
      redis.call('ZADD', KEYS[1], 'LT', t, ep)
    end
  end
  granted[#granted + 1] = target
end
return granted
