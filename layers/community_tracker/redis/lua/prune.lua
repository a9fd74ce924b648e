-- One community's share of the scheduled cleanup, in one round trip.
-- Contract: scripts.PruneKeys / scripts.PruneArgs.
local SERIES = KEYS[9]
local CLOSED_PEAK_YESTERDAY = KEYS[10]
local CLOSED_PEAK_DAY_BEFORE = KEYS[11]
local CLOSED_PEAK_LAST_WEEK = KEYS[12]
local CLOSED_PEAK_LAST_MONTH = KEYS[13]
local PEAK_DAY = KEYS[14]
local PEAK_WEEK = KEYS[15]
local PEAK_MONTH = KEYS[16]
local cutoff_ms = ARGV[1]
local minute = ARGV[2]
local series_expire_at = ARGV[3]
-- Returns {removed, live count, index flag cleared (0/1), closed peaks, current peaks exist}:
-- closed peaks are {count, at, rolled} per closed bucket; the flag is cleared when the community
-- is empty, so the next visit registers it in the active index again.
local removed = prune(cutoff_ms)
local count = redis.call('ZCARD', LIVE)
sample(SERIES, minute, count, series_expire_at)
local cleared = 0
if count == 0 then
  cleared = redis.call('HDEL', COUNTS, 'indexed')
end
local closed = {}
for _, key in ipairs({CLOSED_PEAK_YESTERDAY, CLOSED_PEAK_DAY_BEFORE, CLOSED_PEAK_LAST_WEEK, CLOSED_PEAK_LAST_MONTH}) do
  closed[#closed + 1] = redis.call('HMGET', key, 'count', 'at', 'rolled')
end
local current = {}
for _, key in ipairs({PEAK_DAY, PEAK_WEEK, PEAK_MONTH}) do
  current[#current + 1] = redis.call('EXISTS', key)
end
return {removed, count, cleared, closed, current}
