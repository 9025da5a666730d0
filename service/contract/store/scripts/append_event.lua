-- Append one event of a worker's attempt, fenced: applied only while that attempt is current
-- and the job is running, exactly once per (attempt, seq) so a client-side retry of this call
-- cannot duplicate a token.
-- KEYS[1] record hash, KEYS[2] events stream, KEYS[3] output string,
-- KEYS[4] (optional: a code-only job's) raw output string, kept as the upstream sent it
-- ARGV[1] attempt, ARGV[2] seq, ARGV[3] event type, ARGV[4] event data (JSON),
-- ARGV[5] token text (for 'token'), ARGV[6] now (ms), ARGV[7] retention seconds,
-- ARGV[8] record fields for a terminal or 'status' event (JSON object: finish_reason, usage,
-- error, blocks_dropped; detected_language), ARGV[9] (optional) upstream text to append to
-- KEYS[4]. A 'token' with empty text appends only that: no entry, {'ok'}.
-- Returns {'ok', entry id} | {'dup'} | {'fenced'} | {'ended', status}
-- | {'lost', stored seq} (earlier writes of this attempt are missing: Redis lost data)
local record, events, output = KEYS[1], KEYS[2], KEYS[3]
local attempt, seq, kind, data = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local text, now, retention, extra = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
local raw, raw_text = KEYS[4], ARGV[9] or ''

local state = redis.call('HMGET', record, 'status', 'attempt', 'seq')
local status, current, last_seq = state[1], tonumber(state[2]), tonumber(state[3])
if status == false then
  return {'fenced'}
end
if current ~= attempt then
  return {'fenced'}
end
if seq <= last_seq then
  return {'dup'}
end
if seq > last_seq + 1 then
  return {'lost', last_seq}
end
if status ~= 'running' then
  return {'ended', status}
end

if raw ~= nil and raw_text ~= '' then
  if redis.call('APPEND', raw, raw_text) == #raw_text then
    -- Created now (a new attempt deletes it): it lives as long as the job's other keys.
    local ttl = redis.call('PTTL', record)
    if ttl > 0 then
      redis.call('PEXPIRE', raw, ttl)
    end
  end
end
if kind == 'token' and text == '' then
  -- The code extractor holds or dropped all of this write's text: nothing for viewers.
  redis.call('HSET', record, 'seq', seq)
  return {'ok'}
end

local n = redis.call('HINCRBY', record, 'n', 1)
local id = redis.call('XADD', events, '*', 't', kind, 'd', data, 'n', n)
redis.call('HSET', record, 'seq', seq, 'last_id', id)
if kind == 'token' then
  redis.call('APPEND', output, text)
  if redis.call('HEXISTS', record, 'first_token_at') == 0 then
    redis.call('HSET', record, 'first_token_at', now)
  end
elseif kind == 'status' then
  for name, value in pairs(cjson.decode(extra)) do
    redis.call('HSET', record, name, value)
  end
elseif kind == 'done' or kind == 'failed' or kind == 'cancelled' then
  redis.call('HSET', record, 'status', kind, 'finished_at', now, 'terminal_id', id)
  local fields = cjson.decode(extra)
  for name, value in pairs(fields) do
    redis.call('HSET', record, name, value)
  end
  redis.call('EXPIRE', record, retention)
  redis.call('EXPIRE', events, retention)
  redis.call('EXPIRE', output, retention)
  if raw ~= nil then
    redis.call('EXPIRE', raw, retention)
  end
end
return {'ok', id}
