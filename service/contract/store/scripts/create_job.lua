-- Create a job: its record, its first event (status queued, offset 1), its expiry, its tombstone
-- (kept longer than the job's keys, so a late reader learns the job expired). One slot.
-- KEYS[1] record hash, KEYS[2] events stream, KEYS[3] output string, KEYS[4] tombstone
-- ARGV[1] ttl seconds, ARGV[2] tombstone ttl seconds, ARGV[3] data of the queued status event,
-- ARGV[4] now (ms), ARGV[5..] record field/value pairs
-- Returns the queued event's entry id, or false when the job already exists.
local record, events, output, tombstone = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl, tombstone_ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local status_data, now = ARGV[3], ARGV[4]

if redis.call('EXISTS', record) == 1 then
  return false
end
local fields = {}
for i = 5, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', record, unpack(fields))
-- Every entry carries its offset n (1, 2, ...; the record keeps the last): a feed that reads an
-- offset other than the next one knows the store went back in time (lost or replaced writes).
local entry_id = redis.call('XADD', events, '*', 't', 'status', 'd', status_data, 'n', 1)
redis.call('HSET', record, 'last_id', entry_id, 'attempt', 0, 'deliveries', 0, 'seq', 0,
  'n', 1)
redis.call('SET', output, '')
redis.call('EXPIRE', record, ttl)
redis.call('EXPIRE', events, ttl)
redis.call('EXPIRE', output, ttl)
redis.call('SET', tombstone, now, 'EX', tombstone_ttl)
return entry_id
