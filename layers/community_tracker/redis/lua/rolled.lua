-- A closed bucket was written to DynamoDB with these figures: it leaves CLOSED unless a late
-- beacon raised one of them since (then the next cleanup writes it again).
-- Contract: scripts.RolledKeys / scripts.RolledArgs.
local CLOSED = KEYS[9]
local PEAK = KEYS[10]
local UNIQUE = KEYS[11]
local member = ARGV[1]
local count = tonumber(ARGV[2])
local unique_visitors = tonumber(ARGV[3])
-- Returns 1 when the bucket left CLOSED. Creates no key: the peak is marked only while it exists.
local now_count = tonumber(redis.call('HGET', PEAK, 'count') or '0')
if now_count > count or redis.call('PFCOUNT', UNIQUE) > unique_visitors then
  return 0
end
if redis.call('EXISTS', PEAK) == 1 then
  redis.call('HSET', PEAK, 'rolled', count)
end
return redis.call('ZREM', CLOSED, member)
