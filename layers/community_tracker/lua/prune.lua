-- One community's share of the scheduled cleanup, in one round trip.
-- KEYS[6] series hour, [7..10] closed peak buckets (yesterday, the day before, last week, last
-- month), [11..13] current peak buckets (day, week, month).
-- ARGV: 1 cutoff_ms, 2 minute field, 3 series expire-at (s).
-- Returns {removed, live count, index flag cleared (0/1), closed peaks, current peaks exist}:
-- closed peaks are {count, at, rolled} per closed bucket; the flag is cleared when the community
-- is empty, so the next visit registers it in the active index again.
local removed = prune(ARGV[1])
local count = redis.call('ZCARD', LIVE)
sample(KEYS[6], ARGV[2], count, ARGV[3])
local cleared = 0
if count == 0 then
  cleared = redis.call('HDEL', COUNTS, 'indexed')
end
local closed = {}
for i = 7, 10 do
  closed[#closed + 1] = redis.call('HMGET', KEYS[i], 'count', 'at', 'rolled')
end
local current = {}
for i = 11, 13 do
  current[#current + 1] = redis.call('EXISTS', KEYS[i])
end
return {removed, count, cleared, closed, current}
