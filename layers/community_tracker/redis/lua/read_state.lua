-- Every aggregate of one community, exact (stale people are discounted, not pruned: a read
-- writes nothing), in one round trip.
-- KEYS[9..11] peak day/week/month, [12..14] unique visitors day/week/month, [15..] series hours.
-- Contract: scripts.ReadStateArgs.
local cutoff_ms = ARGV[1]
local present_after_ms = ARGV[2]
local total, counts, divisions, pairs_, connections = live_counts(cutoff_ms)
local series = {}
for i = 15, #KEYS do
  series[#series + 1] = redis.call('HGETALL', KEYS[i])
end
return {
  total,
  counts,
  divisions,
  pairs_,
  redis.call('HMGET', KEYS[9], 'count', 'at'),
  redis.call('HMGET', KEYS[10], 'count', 'at'),
  redis.call('HMGET', KEYS[11], 'count', 'at'),
  redis.call('PFCOUNT', KEYS[12]),
  redis.call('PFCOUNT', KEYS[13]),
  redis.call('PFCOUNT', KEYS[14]),
  series,
  redis.call('ZCOUNT', PRESENT, '(' .. present_after_ms, '+inf'),
  connections,
}
