-- Read new entries for a consumer, as XREADGROUP does (the reply is the
-- same), and note each entry with an `ordering_key` in its (workspace,
-- key)'s read list, in the same step: the list then holds, in stream order,
-- every keyed entry read and not yet ordered (settle.lua takes an entry out
-- when it writes its ordered deliveries), so a later entry of the key is
-- never sent while an earlier one is still with a daemon, or pending after
-- one died. Used only while the partition has an ordered endpoint (the
-- reader asks each time): a plain read costs Redis less.
-- When nothing new came, the reply is `[[<the stream's last entry id>, []]]`,
-- for the reader to wait (XREAD BLOCK) on entries after it.
-- The read lists' names depend on the entries read: built here from
-- ARGV[4] .. `<byte length>:<workspace>` .. ARGV[5] .. key, the one script
-- that builds key names (all share the stream's hash tag: one slot).
-- KEYS[1] = stream
-- ARGV[1] = group, ARGV[2] = consumer, ARGV[3] = count,
-- ARGV[4], ARGV[5] = the read list's name around the workspace,
-- ARGV[6] = the longest key, ARGV[7] = how long a read list lives (s)
local stream = KEYS[1]
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', stream, '>')
if not r then
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  return { { (last[1] and last[1][1]) or '0-0', {} } }
end
local longest = tonumber(ARGV[6])
for _, e in ipairs(r[1][2]) do
  local f = e[2]
  local ws, key
  for i = 1, #f, 2 do
    if f[i] == 'workspace' then
      ws = f[i + 1]
    elseif f[i] == 'ordering_key' then
      key = f[i + 1]
    end
  end
  if ws and key and #key >= 1 and #key <= longest then
    local list = ARGV[4] .. #ws .. ':' .. ws .. ARGV[5] .. key
    redis.call('RPUSH', list, e[1])
    redis.call('EXPIRE', list, ARGV[7])
  end
end
return r
