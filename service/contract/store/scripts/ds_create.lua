-- Create a Durable Stream, or confirm one that exists with the same configuration (PUT is
-- idempotent); a fork's source was checked and resolved by the caller (ds_fork_ref.lua).
-- KEYS[1] meta hash, KEYS[2] data stream, KEYS[3] producers hash, KEYS[4] forks set
-- ARGV[1] name, ARGV[2] content type as given, ARGV[3] content type normalized ('' = omitted
-- on a fork: inherit), ARGV[4] Stream-TTL seconds (''), ARGV[5] Stream-Expires-At as given (''),
-- ARGV[6] the expiry's deadline in ms (''), ARGV[7] created closed ('1' or ''), ARGV[8] a new
-- generation id, ARGV[9] forked from (''), ARGV[10] fork offset as an entry id (''),
-- ARGV[11] fork offset as requested, as an entry id ('' when omitted), ARGV[12] fork sub-offset ('0'), ARGV[13] 'probe'
-- (only compare with an existing stream) or 'create', ARGV[14..] entries to append in order
-- Returns {'created', tail, closed, released} | {'exists', tail, closed, content type, released}
-- | {'absent', released} (probe) | {'conflict', released} | {'blocked', released}
-- (released: the source of an expired fork deleted here, whose reference the caller drops)
local meta, data, prod, forks = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local name, ct, ctn, ttl, expires_at, deadline = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local closed, gen, from, fork_id, fork_asked, sub = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local mode = ARGV[13]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local released = ''
if redis.call('EXISTS', meta) == 1 then
  local due = tonumber(redis.call('HGET', meta, 'deadline'))
  if due ~= nil and now_ms() >= due then
    if redis.call('SCARD', forks) > 0 then
      redis.call('HSET', meta, 'soft', '1')
    else
      released = redis.call('HGET', meta, 'from') or ''
      redis.call('DEL', meta, data, prod, forks)
    end
  end
end

if redis.call('EXISTS', meta) == 1 then
  local f = redis.call('HMGET', meta, 'soft', 'ctn', 'ttl', 'exp', 'closed', 'from', 'fo', 'fso',
    'tail', 'ct')
  if f[1] == '1' then
    return {'blocked', released}
  end
  local same = (ctn == '' and from ~= '') or ctn == f[2]
  if from ~= '' then
    -- A fork inherits its expiry: only an expiry asked for is compared.
    same = same and (ttl == '' or ttl == (f[3] or '')) and (expires_at == '' or expires_at == (f[4] or ''))
  else
    same = same and ttl == (f[3] or '') and expires_at == (f[4] or '')
  end
  same = same and closed == (f[5] or '') and from == (f[6] or '')
  same = same and (fork_asked == '' or fork_asked == (f[7] or ''))
  same = same and sub == (f[8] or '0')
  if same then
    return {'exists', f[9], f[5] or '', f[10], released}
  end
  return {'conflict', released}
end
if mode == 'probe' then
  return {'absent', released}
end

local start = fork_id ~= '' and fork_id or '0-0'
redis.call('HSET', meta, 'name', name, 'ct', ct, 'ctn', ctn, 'gen', gen, 'tail', start,
  'lid', start, 'fso', sub)
if ttl ~= '' then
  redis.call('HSET', meta, 'ttl', ttl, 'deadline', string.format('%d', now_ms() + tonumber(ttl) * 1000))
elseif expires_at ~= '' then
  redis.call('HSET', meta, 'exp', expires_at, 'deadline', deadline)
end
if from ~= '' then
  redis.call('HSET', meta, 'from', from, 'fo', fork_id)
end

-- Entry ids continue the fork offset's id space, and are never below the last one used.
local tail = start
local lms, lseq = string.match(start, '^(%d+)-(%d+)$')
lms, lseq = tonumber(lms), tonumber(lseq)
for i = 14, #ARGV do
  local ms = now_ms()
  if ms > lms then
    lms, lseq = ms, 0
  else
    lseq = lseq + 1
  end
  tail = string.format('%d-%d', lms, lseq)
  redis.call('XADD', data, tail, 'd', ARGV[i])
end
if closed == '1' then
  redis.call('HSET', meta, 'closed', '1')
end
redis.call('HSET', meta, 'tail', tail, 'lid', tail)
local due = redis.call('HGET', meta, 'deadline')
if due then
  redis.call('PEXPIREAT', meta, due)
  redis.call('PEXPIREAT', data, due)
end
return {'created', tail, closed, released}
