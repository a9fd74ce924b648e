-- Every aggregate of one community, exact (stale people are pruned first), in one round trip.
-- KEYS[9..11] peak day/week/month, [12..14] unique visitors day/week/month, [15..] series hours.
-- Contract: scripts.ReadStateArgs.
local cutoff_ms = ARGV[1]
local present_after_ms = ARGV[2]
prune(cutoff_ms)
local series = {}
for i = 15, #KEYS do
  series[#series + 1] = redis.call('HGETALL', KEYS[i])
end
return {
  redis.call('ZCARD', LIVE),
  redis.call('HMGET', COUNTS, 'auth', 'anon', 'cross'),
  redis.call('HGETALL', DIVISIONS),
  redis.call('HGETALL', PAIRS),
  redis.call('HMGET', KEYS[9], 'count', 'at'),
  redis.call('HMGET', KEYS[10], 'count', 'at'),
  redis.call('HMGET', KEYS[11], 'count', 'at'),
  redis.call('PFCOUNT', KEYS[12]),
  redis.call('PFCOUNT', KEYS[13]),
  redis.call('PFCOUNT', KEYS[14]),
  series,
  redis.call('ZCOUNT', PRESENT, '(' .. present_after_ms, '+inf'),
  redis.call('ZCARD', CONNS),
}
