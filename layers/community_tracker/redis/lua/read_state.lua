-- Every aggregate of one community, exact (stale visitors are pruned first), in one round trip.
-- KEYS[6..8] peak day/week/month, [9..11] unique visitors day/week/month, [12..] series hours.
-- Contract: scripts.ReadStateArgs.
local cutoff_ms = ARGV[1]
prune(cutoff_ms)
local series = {}
for i = 12, #KEYS do
  series[#series + 1] = redis.call('HGETALL', KEYS[i])
end
return {
  redis.call('ZCARD', LIVE),
  redis.call('HMGET', COUNTS, 'auth', 'anon', 'cross'),
  redis.call('HGETALL', DIVISIONS),
  redis.call('HGETALL', PAIRS),
  redis.call('HMGET', KEYS[6], 'count', 'at'),
  redis.call('HMGET', KEYS[7], 'count', 'at'),
  redis.call('HMGET', KEYS[8], 'count', 'at'),
  redis.call('PFCOUNT', KEYS[9]),
  redis.call('PFCOUNT', KEYS[10]),
  redis.call('PFCOUNT', KEYS[11]),
  series,
}
