-- Delete a Durable Stream: at once, or, while forks still read its data, soft-deleted (gone to
-- its clients, its path blocked, its data kept until its last fork goes).
-- KEYS[1] meta hash, KEYS[2] data stream, KEYS[3] producers hash, KEYS[4] forks set
-- ARGV[1..] forks found deleted (their metadata is gone): dropped from the forks set first
-- Returns {'deleted', forked from or ''} | {'soft'} | {'gone'} | {'missing', released}
-- (forked from / released: a source whose reference the caller drops)
local meta, data, prod, forks = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', meta) == 0 then
  return {'missing', ''}
end
for i = 1, #ARGV do
  redis.call('SREM', forks, ARGV[i])
end
local f = redis.call('HMGET', meta, 'soft', 'deadline', 'from')
local due = tonumber(f[2])
local expired = due ~= nil and now >= due
if f[1] == '1' or (expired and redis.call('SCARD', forks) > 0) then
  redis.call('HSET', meta, 'soft', '1')
  return {'gone'}
end
if expired then
  redis.call('DEL', meta, data, prod, forks)
  return {'missing', f[3] or ''}
end
if redis.call('SCARD', forks) > 0 then
  redis.call('HSET', meta, 'soft', '1')
  return {'soft'}
end
redis.call('DEL', meta, data, prod, forks)
return {'deleted', f[3] or ''}
