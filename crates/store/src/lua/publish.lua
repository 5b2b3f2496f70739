-- Publish an event once per (workspace, event id): the XADD and the record
-- of it in one atomic step, so a repeat never writes a second stream entry.
-- KEYS[1] = stream, KEYS[2] = the publish record of (workspace, event id),
-- KEYS[3] = ingest's idempotency marker of the same (set when an XADD from a
-- producer carried the id first)
-- ARGV[1] = fingerprint of the event without its id, ARGV[2] = retention (s),
-- then the entry's fields (name, value, ...).
-- Returns {'new', entry id}, or {'repeat', entry id, fingerprint} where the
-- fingerprint is '' when the first was a producer's XADD (nothing to compare).
local prior = redis.call('GET', KEYS[2])
if prior then
  local space = string.find(prior, ' ', 1, true)
  return { 'repeat', string.sub(prior, 1, space - 1), string.sub(prior, space + 1) }
end
local marker = redis.call('GET', KEYS[3])
if marker then return { 'repeat', marker, '' } end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], id .. ' ' .. ARGV[1], 'EX', ARGV[2])
return { 'new', id }
