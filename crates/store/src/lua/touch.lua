-- Keep entries this consumer is still working on from looking abandoned:
-- reset their idle time in the group, but only for entries it still owns.
-- (A plain XCLAIM with min-idle 0 would take an entry back from a daemon
-- that has taken it over meanwhile; then both would send and settle it.)
-- Whose each entry is, is asked only when a daemon took entries over since
-- the caller's last touch (the partition's reclaim count changed; see
-- settle.lua): otherwise they are all still this consumer's.
-- KEYS[1] = stream, KEYS[2] = the partition's reclaim count
-- ARGV[1] = group, ARGV[2] = consumer, ARGV[3] = the reclaim count at the
-- caller's last touch ('' when unknown), then entry ids
-- Returns {the ids this consumer no longer owns, the reclaim count now}.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local count = tonumber(redis.call('GET', KEYS[2]) or '0')
local ask = ARGV[3] == '' or count > tonumber(ARGV[3])
local mine, lost = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if not ask or #redis.call('XPENDING', stream, group, id, id, 1, consumer) > 0 then
    mine[#mine + 1] = id
  else
    lost[#lost + 1] = id
  end
end
if #mine > 0 then
  -- JUSTID: the entry's delivery count is left as it is (it counts reads).
  mine[#mine + 1] = 'JUSTID'
  redis.call('XCLAIM', stream, group, consumer, 0, unpack(mine))
end
return { lost, count }
