-- Persist a batch of validated events and acknowledge their stream entries,
-- atomically: an entry is acknowledged only together with its deliveries.
-- (`push` comes from queues.lua, prepended when the script is loaded.)
-- KEYS[1] = partition stream
-- ARGV[1] = group, ARGV[2] = partition tag, ARGV[3] = now (ms), ARGV[4] = retention (s)
-- then 9 per event: entry id, event key, type-subscribers key, all-subscribers key,
--   event id, event type, workspace, envelope, delivery id base
-- Returns {deliveries created, duplicates skipped}.
-- Index writes (due queues, history indexes, held sets) are gathered per key
-- and written with one variadic command each at the end: a call from Lua
-- costs far more than one more member in a call.
local stream, group, tag = KEYS[1], ARGV[1], ARGV[2]
-- `now` stays the string it came as: formatting a Lua number for every
-- score costs Redis a printf.
local now, retention = ARGV[3], ARGV[4]
local created, duplicates = 0, 0
local seen = {}
-- Per endpoint, once per batch: whether it is paused.
local paused = {}
-- Sorted-set members (all scored `now`) and set members to add, by key.
local zmembers, smembers = {}, {}
local acks = {}
local all_index = key_deliveries(tag)
-- The history indexes among the keys written (they expire, below).
local history = { [all_index] = true }
local i = 5
while i <= #ARGV do
  local entry, evkey, typekey, allkey = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local evid, evtype, ws, envelope, base = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  i = i + 9
  -- The envelope key is also the (workspace, id) marker: NX makes publishing idempotent.
  if redis.call('SET', evkey, envelope, 'NX', 'EX', retention) then
    -- Event-type discovery (written once per workspace and type, below).
    local seen_key = key_types_seen(tag, ws)
    seen[seen_key] = seen[seen_key] or {}
    seen[seen_key][evtype] = (seen[seen_key][evtype] or 0) + 1
    local eps = redis.call('SUNION', typekey, allkey)
    if #eps == 0 then
      -- Nothing to deliver: keep only the marker, not the payload.
      redis.call('SET', evkey, '', 'KEEPTTL')
    end
    for n, ep in ipairs(eps) do
      local id = base .. string.format('%04x', n)
      local dkey = key_delivery(tag, id)
      local status = STATUS_PENDING
      if paused[ep] == nil then
        paused[ep] = redis.call('HGET', key_endpoint(tag, ep), 'paused') == '1'
      end
      if paused[ep] then
        status = STATUS_HELD
        push(smembers, key_held(tag, ep), id)
      else
        push(zmembers, key_due(tag, ep), id)
      end
      redis.call('HSET', dkey, 'endpoint', ep, 'workspace', ws, 'event_id', evid, 'event_key', evkey,
        'type', evtype, 'status', status, 'attempts', '0', 'created', now)
      redis.call('EXPIRE', dkey, retention)
      local ep_index, ws_index = key_endpoint_deliveries(tag, ep), key_workspace_deliveries(tag, ws)
      history[ep_index], history[ws_index] = true, true
      push(zmembers, ep_index, id)
      push(zmembers, ws_index, id)
      push(zmembers, all_index, id)
      created = created + 1
    end
  else
    duplicates = duplicates + 1
  end
  acks[#acks + 1] = entry
end
-- In chunks, to stay within Lua's limit on unpacked arguments.
local CHUNK = 500
for key, ids in pairs(zmembers) do
  for first = 1, #ids, CHUNK do
    local args = {}
    for k = first, math.min(first + CHUNK - 1, #ids) do
      args[#args + 1] = now
      args[#args + 1] = ids[k]
    end
    redis.call('ZADD', key, unpack(args))
  end
  -- A history index lives a retention past its newest entry, so one nobody
  -- trims any more (a workspace whose last endpoint was deleted) goes too.
  if history[key] then redis.call('EXPIRE', key, retention) end
end
for key, ids in pairs(smembers) do
  for first = 1, #ids, CHUNK do
    redis.call('SADD', key, unpack(ids, first, math.min(first + CHUNK - 1, #ids)))
  end
end
-- Endpoints with new due work are ready now.
for ep, is_paused in pairs(paused) do
  if not is_paused then
    redis.call('ZADD', key_ready(tag), 'LT', now, ep)
  end
end
-- Acknowledged together with the deliveries (this script is one atomic step).
for first = 1, #acks, CHUNK do
  redis.call('XACK', stream, group, unpack(acks, first, math.min(first + CHUNK - 1, #acks)))
end
-- How often each type was seen, and when last.
for key, types in pairs(seen) do
  for evtype, n in pairs(types) do
    redis.call('HINCRBY', key, 'n:' .. evtype, n)
    redis.call('HSET', key, 't:' .. evtype, now)
  end
end
return {created, duplicates}
