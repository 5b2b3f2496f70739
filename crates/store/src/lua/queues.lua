-- Shared by the scripts that move deliveries between queues; prepended to
-- each of them when they are loaded (see `Scripts` in schedule.rs).

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

-- When the endpoint next needs a look: its earliest due delivery, or never.
local function refresh(tag, ready, ep)
  local head = redis.call('ZRANGE', key_due(tag, ep), 0, 0, 'WITHSCORES')
  if #head == 0 then
    redis.call('ZREM', ready, ep)
  else
    redis.call('ZADD', ready, head[2], ep)
  end
end
