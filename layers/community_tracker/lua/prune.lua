-- One community's share of the scheduled cleanup. KEYS[6] series hour.
-- ARGV: 1 cutoff_ms, 2 minute field, 3 series expire-at (s).
-- Returns {removed, live count, index flag cleared (0/1)}: the flag is cleared when the community is
-- empty, so the next visit re-registers it in the active index.
local removed = prune(ARGV[1])
local count = redis.call('ZCARD', LIVE)
sample(KEYS[6], ARGV[2], count, ARGV[3])
local cleared = 0
if count == 0 then
  cleared = redis.call('HDEL', COUNTS, 'indexed')
end
return {removed, count, cleared}
