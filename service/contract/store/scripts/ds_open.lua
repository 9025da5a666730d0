-- Open a Durable Stream for a read or HEAD: its metadata, after applying its expiry; a read
-- slides its Stream-TTL (HEAD does not).
-- KEYS[1] meta hash, KEYS[2] data stream, KEYS[3] producers hash, KEYS[4] forks set
-- ARGV[1] '1' to slide the TTL (reads), '' not to (HEAD)
-- Returns {'ok', field, value, ...} | {'gone'} | {'missing', released}
-- (released: the source of an expired fork deleted here, whose reference the caller drops)
local meta, data, prod, forks = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', meta) == 0 then
  return {'missing', ''}
end
local f = redis.call('HMGET', meta, 'soft', 'deadline', 'ttl')
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
if ARGV[1] == '1' and f[3] then
  local deadline = string.format('%d', now + tonumber(f[3]) * 1000)
  redis.call('HSET', meta, 'deadline', deadline)
  if redis.call('SCARD', forks) == 0 then
    redis.call('PEXPIREAT', meta, deadline)
    redis.call('PEXPIREAT', data, deadline)
    redis.call('PEXPIREAT', prod, deadline)
  end
end
local reply = redis.call('HGETALL', meta)
table.insert(reply, 1, 'ok')
return reply
