-- Count event types seen, for discovery (how many, and when last), with at
-- most ARGV[1] distinct types kept per workspace: producers inventing types
-- cannot grow the hash without end (a type counted already keeps counting).
-- KEYS[i] = the workspace's types-seen hash of the i-th sighting
-- ARGV[1] = most types per workspace, ARGV[2] = now (ms), then per sighting: type, count
-- Returns how many sightings were dropped for a full workspace.
local cap, now = tonumber(ARGV[1]), ARGV[2]
local dropped = 0
for i = 1, #KEYS do
  local key, t, n = KEYS[i], ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  if redis.call('HEXISTS', key, 'n:' .. t) == 1 or redis.call('HLEN', key) < 2 * cap then
    redis.call('HINCRBY', key, 'n:' .. t, n)
    redis.call('HSET', key, 't:' .. t, now)
  else
    dropped = dropped + 1
  end
end
return dropped
