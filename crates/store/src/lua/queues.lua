-- Shared by the scripts that move deliveries between queues; prepended to
-- each of them when they are loaded (see `Scripts` in scripts.rs). Every
-- key these functions touch is passed in by the caller, from its KEYS.

-- Appends one or two values to the list kept under `key` in `t`, making it
-- on first use: writes gathered per key, for one variadic command each.
local function push(t, key, a, b)
  local l = t[key]
  if not l then
    l = {}
    t[key] = l
  end
  l[#l + 1] = a
  if b then l[#l + 1] = b end
end

-- Key types, checked before a script writes anything: a write that would
-- fail half way (a key of the wrong type) is refused before it starts.
-- `type_ok` answers for one item's key (asked once per key per call): the
-- script sets that item aside and writes the rest. `expect_type` fails the
-- whole call (for the keys every item shares), with nothing written.
local key_types = {}
local function type_ok(key, want)
  local t = key_types[key]
  if not t then
    t = redis.call('TYPE', key).ok
    key_types[key] = t
  end
  return t == 'none' or t == want
end

local function expect_type(key, want)
  if not type_ok(key, want) then
    return error({ err = 'WRONGTYPE ' .. key .. ' holds a ' .. key_types[key] .. ', not a ' .. want })
  end
end

-- The first of `checks` ({key, type} pairs) whose key holds another type,
-- as a message; nil when all are fine.
local function wrong_type(checks)
  for _, c in ipairs(checks) do
    if not type_ok(c[1], c[2]) then
      return c[1] .. ' holds a ' .. key_types[c[1]] .. ', not a ' .. c[2]
    end
  end
  return nil
end

-- When the endpoint `ep` next needs a look: its earliest due delivery, or never.
local function refresh(ready, duekey, ep)
  local head = redis.call('ZRANGE', duekey, 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', ready, ep)
  else
    redis.call('ZADD', ready, head[2], ep)
  end
end

-- Counts one attempt's outcome towards its endpoint's streak for the
-- circuit breaker (`streak`: endpoint -> {reset, fails, err}).
local function tally(streak, ep, succeeded, err)
  local s = streak[ep] or { reset = false, fails = 0, err = '' }
  if succeeded then
    s.reset, s.fails = true, 0
  else
    s.fails, s.err = s.fails + 1, err
  end
  streak[ep] = s
end

-- The circuit breaker, once per endpoint of a batch of attempts: an
-- endpoint whose attempts have failed `trip_after` times in a row, over at
-- least `trip_window` ms, is paused. `hash_of` maps an endpoint id to its
-- hash (declared by the caller); `config` is the configuration version.
-- Appends 5 values per endpoint it paused to `tripped`: endpoint id,
-- endpoint doc, failures, failing since (ms), last error.
local function breaker(hash_of, streak, now, trip_after, trip_window, tripped, config)
  for ep, s in pairs(streak) do
    local epkey = hash_of[ep]
    if s.reset then
      redis.call('HDEL', epkey, 'fails', 'failing_since', 'last_error')
    end
    if s.fails > 0 and redis.call('EXISTS', epkey) == 1 then
      local fails = redis.call('HINCRBY', epkey, 'fails', s.fails)
      redis.call('HSETNX', epkey, 'failing_since', now)
      redis.call('HSET', epkey, 'last_error', s.err)
      local since = tonumber(redis.call('HGET', epkey, 'failing_since'))
      if trip_after > 0 and fails >= trip_after and tonumber(now) - since >= trip_window
          and redis.call('HGET', epkey, 'paused') ~= '1' then
        local reason = 'circuit breaker: ' .. fails .. ' attempts failed in a row; last error: ' .. s.err
        redis.call('HSET', epkey, 'paused', '1', 'paused_reason', reason, 'paused_at', now)
        redis.call('INCR', config)
        table.insert(tripped, ep)
        table.insert(tripped, redis.call('HGET', epkey, 'doc'))
        table.insert(tripped, fails)
        table.insert(tripped, since)
        table.insert(tripped, s.err)
      end
    end
  end
end

-- A receiver's 410 Gone pauses its endpoint: only while the endpoint exists
-- (no ghost hash) and once (one paused already keeps its first reason, and
-- is not announced again). Appends the pause to `tripped` as the breaker
-- does, with 0 failures (the caller's sign of a 410).
local function pause_gone(epkey, ep, reason, now, config, tripped)
  if redis.call('EXISTS', epkey) == 1 and redis.call('HGET', epkey, 'paused') ~= '1' then
    redis.call('HSET', epkey, 'paused', '1', 'paused_reason', reason, 'paused_at', now)
    redis.call('INCR', config)
    table.insert(tripped, ep)
    table.insert(tripped, redis.call('HGET', epkey, 'doc'))
    table.insert(tripped, 0)
    table.insert(tripped, now)
    table.insert(tripped, reason)
  end
end

-- Ordered delivery (endpoints with `ordering: key`). An ordered endpoint's
-- deliveries of one key are members of its order zset (all scored 0, so
-- ordered by member): `<ms>-<seq padded to 10 digits>` of their entry ids,
-- which sorts as the stream does. The first is the key's head: it alone is
-- in the due queue (status `waiting` until a claim starts it, see
-- claim.lua); the others wait behind it.
local function order_member(entry)
  local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
  return ms .. '-' .. string.format('%010d', tonumber(seq))
end
local function member_entry(member)
  local ms, seq = string.match(member, '^(%d+)-(%d+)$')
  return ms .. '-' .. tonumber(seq)
end
-- Whether entry id `a` comes before `b` in the stream.
local function entry_before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return false end
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end
-- Puts the head of an order zset into the due queue, due now: the next
-- delivery of the key goes. `dlv` is the prefix of delivery hashes, `ep`
-- the endpoint; returns the head's delivery id, or nil when the key has
-- none left. A head whose state expired is dropped and the next taken.
local function order_next(order, dlv, ep, due, now)
  while true do
    local head = redis.call('ZRANGE', order, 0, 0)[1]
    if not head then return nil end
    local id = 'dlv_' .. member_entry(head) .. '_' .. ep
    if redis.call('EXISTS', dlv .. id) == 1 then
      local at = string.format('%d', now)
      redis.call('HSET', dlv .. id, 'next_at', at)
      redis.call('ZADD', due, at, id)
      return id
    end
    redis.call('ZREM', order, head)
  end
end
