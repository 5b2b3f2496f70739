-- Take entries for this consumer without letting hostile ones leave Redis:
-- new entries (XREADGROUP, never blocking here), or those another consumer
-- left pending past a minimum idle time (XAUTOCLAIM). An entry with more
-- fields, or more bytes of fields, than the limits is moved to the
-- dead-letter stream here, its first fields cut short, and acknowledged, so
-- no daemon ever reads it whole (nor again after a crash).
-- KEYS[1] = stream, KEYS[2] = dead-letter stream
-- ARGV[1] = group, ARGV[2] = consumer, ARGV[3] = count,
-- ARGV[4] = minimum idle (ms) to reclaim, or '' for new entries,
-- ARGV[5] = max fields, ARGV[6] = max bytes of names and values, ARGV[7] = dead-letter cap
-- Returns {entries, dead}: entries as XREADGROUP gives them ({id, {field, value, ...}}),
-- and the reason of each entry dead-lettered here.
local stream, dead = KEYS[1], KEYS[2]
local group, consumer, count = ARGV[1], ARGV[2], ARGV[3]
local max_fields, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])
local entries
if ARGV[4] == '' then
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, '>')
  entries = (r and r[1] and r[1][2]) or {}
else
  entries = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[4], '0-0', 'COUNT', count)[2]
end
local out, reasons = {}, {}
for _, e in ipairs(entries) do
  local id, f = e[1], e[2]
  -- (An entry trimmed away while pending comes back without fields: nothing to deliver.)
  if type(f) == 'table' then
    local n, reason, message = #f / 2, nil, nil
    if n > max_fields then
      reason = 'too_many_fields'
      message = n .. ' fields, over the limit of ' .. max_fields .. ' ([ingest] max_fields)'
    else
      local bytes = 0
      for i = 1, #f do bytes = bytes + #f[i] end
      if bytes > max_bytes then
        reason = 'too_large'
        message = 'the entry is ' .. bytes .. ' bytes, over the limit ([ingest] max_payload_bytes)'
      end
    end
    if reason then
      local dl = { 'XADD', dead, 'MAXLEN', ARGV[7], '*', 'reason', reason, 'message', message,
        'entry_id', id, 'stream', stream, 'truncated', '1' }
      for i = 1, math.min(#f, 32), 2 do
        dl[#dl + 1] = 'field.' .. string.sub(f[i], 1, 128)
        dl[#dl + 1] = string.sub(f[i + 1], 1, 1024)
      end
      redis.call(unpack(dl))
      redis.call('XACK', stream, group, id)
      reasons[#reasons + 1] = reason
    else
      out[#out + 1] = e
    end
  end
end
return { out, reasons }
