-- Move entries over the event limits to the dead-letter stream without
-- their bytes leaving Redis: the stream reader (reader.rs) saw their field
-- count or lengths, drained them unread and names them here. Each is kept
-- cut short (its first 16 fields, names to 128 bytes, values to 1 KiB) and
-- acknowledged, so no daemon reads it again, even after a crash.
-- KEYS[1] = stream, KEYS[2] = dead-letter stream
-- ARGV[1] = group, ARGV[2] = dead-letter cap, then per entry: id, reason, message.
local stream, dead, group, cap = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
for i = 3, #ARGV, 3 do
  local id, reason, message = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local found = redis.call('XRANGE', stream, id, id)
  -- (Trimmed meanwhile: nothing left to keep, only the acknowledgement.)
  if found[1] then
    local f = found[1][2]
    local dl = { 'XADD', dead, 'MAXLEN', cap, '*', 'reason', reason, 'message', message,
      'entry_id', id, 'stream', stream, 'truncated', '1' }
    for j = 1, math.min(#f, 32), 2 do
      dl[#dl + 1] = 'field.' .. string.sub(f[j], 1, 128)
      dl[#dl + 1] = string.sub(f[j + 1], 1, 1024)
    end
    redis.call(unpack(dl))
  end
  redis.call('XACK', stream, group, id)
end
return 0
