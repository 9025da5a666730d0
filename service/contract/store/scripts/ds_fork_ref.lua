-- A fork's reference on its source stream, which keeps the source's data while forks read it.
-- 'check': the source as a fork would see it (no change). 'ref': take the reference (the
-- fork's metadata exists by then, so a dangling name always means a deleted fork). 'unref':
-- drop references; a soft-deleted source whose last fork went is deleted (the caller then
-- drops its reference on its own source, up the chain).
-- KEYS[1] meta hash, KEYS[2] data stream, KEYS[3] producers hash, KEYS[4] forks set
-- ARGV[1] 'check' | 'ref' | 'unref', ARGV[2..] fork names (ref: one; unref: any)
-- Returns {'ok', field, value, ...} (check) | {'ok'} | {'soft'} | {'missing', released}
-- | {'deleted', forked from or ''} (unref)
local meta, data, prod, forks = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function schedule()
  local deadline = redis.call('HGET', meta, 'deadline')
  for _, key in ipairs({meta, data, prod}) do
    if deadline and redis.call('SCARD', forks) == 0 then
      redis.call('PEXPIREAT', key, deadline)
    else
      redis.call('PERSIST', key)
    end
  end
end

if redis.call('EXISTS', meta) == 0 then
  return {'missing', ''}
end
if op == 'unref' then
  for i = 2, #ARGV do
    redis.call('SREM', forks, ARGV[i])
  end
  if redis.call('SCARD', forks) > 0 then
    return {'ok'}
  end
  local f = redis.call('HMGET', meta, 'soft', 'deadline', 'from')
  local due = tonumber(f[2])
  if f[1] == '1' or (due ~= nil and now >= due) then
    redis.call('DEL', meta, data, prod, forks)
    return {'deleted', f[3] or ''}
  end
  schedule()
  return {'ok'}
end

local f = redis.call('HMGET', meta, 'soft', 'deadline')
local due = tonumber(f[2])
if due ~= nil and now >= due then
  if redis.call('SCARD', forks) > 0 then
    redis.call('HSET', meta, 'soft', '1')
    return {'soft'}
  end
  local from = redis.call('HGET', meta, 'from') or ''
  redis.call('DEL', meta, data, prod, forks)
  return {'missing', from}
end
if f[1] == '1' then
  return {'soft'}
end
if op == 'ref' then
  redis.call('SADD', forks, ARGV[2])
  schedule()
  return {'ok'}
end
local reply = redis.call('HGETALL', meta)
table.insert(reply, 1, 'ok')
return reply
