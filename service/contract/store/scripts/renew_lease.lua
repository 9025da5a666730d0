-- Keep a worker's claim on a queue entry alive, but only while that worker still owns it:
-- a plain XCLAIM would steal the entry back from the worker that reclaimed it.
-- KEYS[1] queue stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id
-- Returns 1 while the entry is still ours, else 0.
local queue = KEYS[1]
local group, consumer, entry = ARGV[1], ARGV[2], ARGV[3]

local pending = redis.call('XPENDING', queue, group, entry, entry, 1, consumer)
if #pending == 0 then
  return 0
end
redis.call('XCLAIM', queue, group, consumer, 0, entry, 'JUSTID')
return 1
