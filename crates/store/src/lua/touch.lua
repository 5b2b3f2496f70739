-- Keep entries this consumer is still working on from looking abandoned:
-- reset their idle time in the group, but only for entries it still owns.
-- (A plain XCLAIM with min-idle 0 would take an entry back from a daemon
-- that has taken it over meanwhile; then both would send and settle it.)
-- KEYS[1] = stream
-- ARGV[1] = group, ARGV[2] = consumer, then entry ids
-- Returns the ids this consumer no longer owns.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local mine, lost = {}, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', stream, group, id, id, 1, consumer) > 0 then
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
return lost
