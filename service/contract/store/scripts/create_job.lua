-- Create a job: its record, its first event (status queued), its expiry. One slot.
-- KEYS[1] record hash, KEYS[2] events stream, KEYS[3] output string
-- ARGV[1] ttl seconds, ARGV[2] data of the queued status event, ARGV[3..] record field/value pairs
-- Returns the queued event's entry id, or false when the job already exists.
local record, events, output = KEYS[1], KEYS[2], KEYS[3]
local ttl, status_data = tonumber(ARGV[1]), ARGV[2]

if redis.call('EXISTS', record) == 1 then
  return false
end
local fields = {}
for i = 3, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', record, unpack(fields))
local entry_id = redis.call('XADD', events, '*', 't', 'status', 'd', status_data)
redis.call('HSET', record, 'last_id', entry_id, 'attempt', 0, 'deliveries', 0, 'seq', 0)
redis.call('SET', output, '')
redis.call('EXPIRE', record, ttl)
redis.call('EXPIRE', events, ttl)
redis.call('EXPIRE', output, ttl)
return entry_id
