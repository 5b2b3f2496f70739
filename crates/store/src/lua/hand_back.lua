-- A daemon stopping hands back the entries it still has pending (deliveries
-- waiting here for a slot, entries read ahead but not routed, attempts the
-- shutdown grace cut short): each is made to look abandoned at once, so
-- the next daemon's reclaim takes it over without waiting `reclaim_idle`,
-- and its delivery count is set back by one, so a graceful stop (a rolling
-- deploy) never counts toward `[ingest] max_deliveries`, which is for
-- entries whose readers die.
-- KEYS[1] = stream
-- ARGV[1] = group, ARGV[2] = consumer, ARGV[3] = idle time to set (ms),
-- ARGV[4] = start after this id ('-': from the first), ARGV[5] = most to hand back
-- Returns {how many were handed back, the last id (to start after next), or
-- '' when none is left}.
local stream, group, consumer, idle = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local start = ARGV[4] == '-' and '-' or '(' .. ARGV[4]
local pending = redis.call('XPENDING', stream, group, start, '+', tonumber(ARGV[5]), consumer)
local last = ''
for _, p in ipairs(pending) do
  local count = math.max(tonumber(p[4]) - 1, 0)
  redis.call('XCLAIM', stream, group, consumer, 0, p[1], 'IDLE', idle, 'RETRYCOUNT', count, 'JUSTID')
  last = p[1]
end
return { #pending, last }
