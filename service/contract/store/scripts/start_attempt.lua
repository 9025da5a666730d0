-- Start a new attempt of a job: the fence every later write of the attempt is checked against.
-- A new delivery (expected_attempt = '') counts against max_deliveries; a retry inside the same
-- worker passes the attempt it is replacing and is refused if that is no longer current.
-- KEYS[1] record hash, KEYS[2] events stream, KEYS[3] output string, KEYS[4] (optional) raw
-- output string (a new attempt clears it with the output, and the code extractor's fields)
-- ARGV[1] worker id, ARGV[2] now (ms), ARGV[3] expected attempt or '', ARGV[4] max deliveries,
-- ARGV[5] reason for a reset, ARGV[6] retention seconds (applied if the job ends here),
-- ARGV[7] the queue entry that delivered the job ('' for a retry)
-- Returns {'ok', attempt} | {'missing'} | {'terminal', status} | {'fenced'} | {'exhausted', id}
-- | {'duplicate'} (another queue entry of the same job owns it: drop this one)
local record, events, output = KEYS[1], KEYS[2], KEYS[3]
local worker, now, expected = ARGV[1], ARGV[2], ARGV[3]
local max_deliveries, reason, retention = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local entry = ARGV[7]
local raw = KEYS[4]

if redis.call('EXISTS', record) == 0 then
  return {'missing'}
end
local state = redis.call('HMGET', record, 'status', 'attempt', 'deliveries', 'entry')
local status, attempt, deliveries = state[1], tonumber(state[2]), tonumber(state[3])
local owner_entry = state[4]
if status == 'done' or status == 'failed' or status == 'cancelled' then
  return {'terminal', status}
end
if entry ~= '' then
  -- A submit whose queue write was retried may have enqueued the job twice.
  if owner_entry ~= false and owner_entry ~= entry then
    return {'duplicate'}
  end
  redis.call('HSET', record, 'entry', entry)
end
if expected ~= '' and tonumber(expected) ~= attempt then
  if attempt == tonumber(expected) + 1 and redis.call('HGET', record, 'worker') == worker then
    -- This very retry was applied already and its reply lost (a client-side resend).
    return {'ok', attempt}
  end
  return {'fenced'}
end

local function append(kind, data)
  local n = redis.call('HINCRBY', record, 'n', 1)
  return redis.call('XADD', events, '*', 't', kind, 'd', data, 'n', n)
end

local function finish_failed(code, message)
  local data = cjson.encode({code = code, message = message})
  local id = append('failed', data)
  redis.call('HSET', record, 'status', 'failed', 'finished_at', now, 'error', data,
    'last_id', id, 'terminal_id', id)
  redis.call('EXPIRE', record, retention)
  redis.call('EXPIRE', events, retention)
  redis.call('EXPIRE', output, retention)
  if raw ~= nil then
    redis.call('EXPIRE', raw, retention)
  end
  return id
end

if expected == '' then
  deliveries = deliveries + 1
  redis.call('HSET', record, 'deliveries', deliveries)
  if deliveries > max_deliveries then
    local id = finish_failed('worker_lost',
      'the job was taken by a worker ' .. (deliveries - 1) .. ' times without finishing')
    return {'exhausted', id}
  end
end

attempt = attempt + 1
redis.call('HSET', record, 'attempt', attempt, 'seq', 0, 'worker', worker, 'status', 'running',
  'attempt_started_at', now)
-- Time to first token is the current attempt's own: a retry measures its upstream afresh.
-- The code extractor starts over with the attempt too: its language, its count, the raw text.
redis.call('HDEL', record, 'first_token_at', 'detected_language', 'blocks_dropped')
if raw ~= nil then
  redis.call('DEL', raw)
end
if redis.call('HEXISTS', record, 'started_at') == 0 then
  redis.call('HSET', record, 'started_at', now)
end
if redis.call('STRLEN', output) > 0 then
  local data = cjson.encode({attempt = attempt, reason = reason})
  append('reset', data)
  redis.call('SET', output, '', 'KEEPTTL')
end
local status_data = '{"status":"running","attempt":' .. attempt .. '}'
local id = append('status', status_data)
redis.call('HSET', record, 'last_id', id)
return {'ok', attempt}
