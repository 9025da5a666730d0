-- Cancel a job from outside its worker: the cancelled entry becomes the job's last, and the
-- status change fences the worker, which notices and closes its upstream call.
-- KEYS[1] record hash, KEYS[2] events stream, KEYS[3] output string, KEYS[4] (optional) raw
-- output string
-- ARGV[1] now (ms), ARGV[2] retention seconds, ARGV[3] the cancelled event's data (JSON:
-- {} or {"reason": "abandoned" | "replaced"})
-- Returns {'cancelled', entry id} | {'terminal', status} | {'missing'}
local record, events, output = KEYS[1], KEYS[2], KEYS[3]
local now, retention, data = ARGV[1], tonumber(ARGV[2]), ARGV[3]

local status = redis.call('HGET', record, 'status')
if status == false then
  return {'missing'}
end
if status == 'done' or status == 'failed' or status == 'cancelled' then
  return {'terminal', status}
end
local n = redis.call('HINCRBY', record, 'n', 1)
local id = redis.call('XADD', events, '*', 't', 'cancelled', 'd', data, 'n', n)
redis.call('HSET', record, 'status', 'cancelled', 'finished_at', now, 'last_id', id,
  'terminal_id', id, 'finish_reason', 'cancelled')
redis.call('EXPIRE', record, retention)
redis.call('EXPIRE', events, retention)
redis.call('EXPIRE', output, retention)
if KEYS[4] ~= nil then
  redis.call('EXPIRE', KEYS[4], retention)
end
return {'cancelled', id}
