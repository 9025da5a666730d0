-- Append to a Durable Stream and/or close it, fenced in one step: the stream's state (gone,
-- closed, content type), the idempotent producer's epoch and sequence, and Stream-Seq are
-- checked, and the data, the producer's new state and the closure are written together, so a
-- retried or concurrent request can neither duplicate nor reorder an append.
-- KEYS[1] meta hash, KEYS[2] data stream, KEYS[3] producers hash, KEYS[4] forks set
-- ARGV[1] the body's content type, normalized, ARGV[2] close ('1' or ''), ARGV[3] Stream-Seq
-- (''), ARGV[4] Producer-Id ('' without producer headers), ARGV[5] Producer-Epoch,
-- ARGV[6] Producer-Seq (decimal, at most 2^53-1), ARGV[7] the data to append ('' = close only)
-- Returns {'ok', tail, closed} | {'dup', last seq, closed} | {'dup_closed', tail}
-- | {'closed', tail} | {'content_type'} | {'stale_epoch', epoch} | {'epoch_seq'}
-- | {'gap', last seq or '-1', received} | {'seq_conflict'} | {'gone'} | {'missing', released}
-- (released: the source of an expired fork deleted here, whose reference the caller drops)
local meta, data, prod, forks = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ctn, close, stream_seq, pid = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4]
local epoch_text, seq_text, body = ARGV[5], ARGV[6], ARGV[7]

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', meta) == 0 then
  return {'missing', ''}
end
local f = redis.call('HMGET', meta, 'soft', 'deadline', 'closed', 'tail', 'ctn', 'cbp', 'cbe',
  'cbs', 'sseq', 'ttl', 'lid')
local due = tonumber(f[2])
if due ~= nil and now >= due then
  if redis.call('SCARD', forks) > 0 then
    redis.call('HSET', meta, 'soft', '1')
    return {'gone'}
  end
  local from = redis.call('HGET', meta, 'from') or ''
  redis.call('DEL', meta, data, prod, forks)
  return {'missing', from}
end
if f[1] == '1' then
  return {'gone'}
end

-- A write slides a Stream-TTL; the keys expire with the stream unless forks still read it.
local function touch()
  local deadline = f[2]
  if f[10] then
    deadline = string.format('%d', now + tonumber(f[10]) * 1000)
    redis.call('HSET', meta, 'deadline', deadline)
  end
  if deadline and redis.call('SCARD', forks) == 0 then
    redis.call('PEXPIREAT', meta, deadline)
    redis.call('PEXPIREAT', data, deadline)
    redis.call('PEXPIREAT', prod, deadline)
  end
end

local tail = f[4]
if f[3] == '1' then
  if pid ~= '' and f[6] == pid and f[7] == epoch_text and f[8] == seq_text then
    touch()
    return {'dup_closed', tail}
  end
  if body == '' and close and pid == '' then
    touch()
    return {'ok', tail, '1'}
  end
  return {'closed', tail}
end
if body ~= '' and ctn ~= f[5] then
  return {'content_type'}
end

if pid ~= '' then
  local epoch, seq = tonumber(epoch_text), tonumber(seq_text)
  local state = redis.call('HGET', prod, pid)
  if not state then
    if seq ~= 0 then
      return {'gap', '-1', seq_text}
    end
  else
    local known_epoch, last_seq = string.match(state, '^(%d+) (%d+)$')
    if epoch < tonumber(known_epoch) then
      return {'stale_epoch', known_epoch}
    end
    if epoch > tonumber(known_epoch) then
      if seq ~= 0 then
        return {'epoch_seq'}
      end
    elseif seq <= tonumber(last_seq) then
      return {'dup', last_seq, ''}
    elseif seq > tonumber(last_seq) + 1 then
      return {'gap', last_seq, seq_text}
    end
  end
end
if stream_seq ~= '' and f[9] and stream_seq <= f[9] then
  return {'seq_conflict'}
end

-- Entry ids are time-based and never below the last one used (a fork's start at its offset).
local lms, lseq = string.match(f[11], '^(%d+)-(%d+)$')
lms, lseq = tonumber(lms), tonumber(lseq)
local function next_id()
  if now > lms then
    lms, lseq = now, 0
  else
    lseq = lseq + 1
  end
  return string.format('%d-%d', lms, lseq)
end

if body ~= '' then
  tail = next_id()
  redis.call('XADD', data, tail, 'd', body)
  redis.call('HSET', meta, 'tail', tail)
end
if pid ~= '' then
  redis.call('HSET', prod, pid, epoch_text .. ' ' .. seq_text)
end
if stream_seq ~= '' then
  redis.call('HSET', meta, 'sseq', stream_seq)
end
if close then
  redis.call('HSET', meta, 'closed', '1')
  if pid ~= '' then
    redis.call('HSET', meta, 'cbp', pid, 'cbe', epoch_text, 'cbs', seq_text)
  end
  -- An entry without data, so readers waiting on the stream wake up and see the closure.
  redis.call('XADD', data, next_id(), 'c', '1')
end
redis.call('HSET', meta, 'lid', string.format('%d-%d', lms, lseq))
touch()
return {'ok', tail, close and '1' or ''}
