-- Requeue a dead-lettered job: reset its record and events to a fresh queued job in one step,
-- so that it can run again. The caller then enqueues it and removes the dead letter (other
-- hash slots, so other commands); a requeue interrupted in between is finished by running it
-- again ('again').
-- `attempt` is kept, never reset: the next attempt gets a higher number, so a stale worker of
-- an earlier life of the job stays fenced out. The event stream starts over (a viewer resuming
-- from an old id gets `reset` and the new run).
-- KEYS[1] record hash, KEYS[2] events stream, KEYS[3] output string, KEYS[4] (optional) raw
-- output string
-- ARGV[1] the dead-letter entry being requeued, ARGV[2] now (ms), ARGV[3] ttl seconds
-- Returns {'requeued', event id} | {'again', event id} | {'missing'} | {'not_failed', status}
local record, events, output = KEYS[1], KEYS[2], KEYS[3]
local dead_entry, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])

local state = redis.call('HMGET', record, 'status', 'requeued_from', 'attempt', 'last_id')
local status, requeued_from, attempt, last_id = state[1], state[2], tonumber(state[3]), state[4]
if status == false then
  return {'missing'}
end
if status == 'queued' and requeued_from == dead_entry then
  return {'again', last_id}
end
if status ~= 'failed' then
  return {'not_failed', status}
end

redis.call('DEL', events)
redis.call('SET', output, '')
if KEYS[4] ~= nil then
  redis.call('DEL', KEYS[4])
end
redis.call('HDEL', record, 'started_at', 'attempt_started_at', 'first_token_at', 'finished_at',
  'finish_reason', 'usage', 'error', 'terminal_id', 'worker', 'entry')
redis.call('HDEL', record, 'detected_language', 'blocks_dropped')
local data = '{"status":"queued","attempt":' .. attempt .. '}'
-- A new stream: offsets start again at 1 (a live feed sees the jump and starts over).
local id = redis.call('XADD', events, '*', 't', 'status', 'd', data, 'n', 1)
redis.call('HSET', record, 'status', 'queued', 'deliveries', 0, 'seq', 0, 'last_id', id,
  'n', 1,
  'requeued_from', dead_entry, 'requeued_at', now)
redis.call('EXPIRE', record, ttl)
redis.call('EXPIRE', events, ttl)
redis.call('EXPIRE', output, ttl)
return {'requeued', id}
