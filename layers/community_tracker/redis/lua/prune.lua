-- One community's share of the scheduled cleanup, in one round trip.
-- Contract: scripts.PruneKeys / scripts.PruneArgs.
local SERIES = KEYS[9]
local META = KEYS[10]
local CLOSED = KEYS[11]
local PEAK_DAY = KEYS[12]
local PEAK_WEEK = KEYS[13]
local PEAK_MONTH = KEYS[14]
local UNIQUE_DAY = KEYS[15]
local UNIQUE_WEEK = KEYS[16]
local UNIQUE_MONTH = KEYS[17]
local cutoff_ms = ARGV[1]
local minute = ARGV[2]
local series_expire_at = ARGV[3]
local community_version = ARGV[4]
local day_bucket = ARGV[5]
local week_bucket = ARGV[6]
local month_bucket = ARGV[7]
local window_ms = tonumber(ARGV[8])
local bucket_margin_ms = tonumber(ARGV[9])
local checkpoint_before_ms = tonumber(ARGV[10])
-- Returns {removed, live count, index flag cleared (0/1), closed buckets, end of the earliest
-- open bucket holding figures (or false), calendar followed (0/1), checkpoint due (0/1)}: a
-- checkpoint is due when an open figure changed since the last one, taken before
-- checkpoint_before_ms (-1: never); it is then taken to be made now. Closed buckets are CLOSED's
-- members, "period|key|start|end", waiting to be written to DynamoDB. The buckets of now are
-- opened first, as by any beacon or read; when the registration named is not Redis's (installed
-- between the caller's look and this), only the live state is pruned. The flag is cleared when
-- the community is empty, so the next visit registers it in the active index again.
local keys = {
  {peak = PEAK_DAY, unique = UNIQUE_DAY},
  {peak = PEAK_WEEK, unique = UNIQUE_WEEK},
  {peak = PEAK_MONTH, unique = UNIQUE_MONTH},
}
local calendar = plan_calendar(META, community_version, {day_bucket, week_bucket, month_bucket})
if calendar then
  open_buckets(calendar, keys, META, CLOSED, window_ms, bucket_margin_ms)
end
local removed = prune(cutoff_ms)
local count = redis.call('ZCARD', LIVE)
sample(SERIES, minute, count, series_expire_at)
local cleared = 0
if count == 0 then
  cleared = redis.call('HDEL', COUNTS, 'indexed')
end
local open_end = false
if calendar then
  for i, wanted in ipairs(calendar) do
    if redis.call('EXISTS', keys[i].peak) == 1 and (not open_end or bucket_end(wanted) < open_end) then
      open_end = bucket_end(wanted)
    end
  end
end
local checkpoint = 0
if calendar and checkpoint_before_ms >= 0 then
  local dirty, taken = unpack(redis.call('HMGET', META, 'dirty', 'checkpoint_ms'))
  if dirty and (not taken or tonumber(taken) <= checkpoint_before_ms) then
    redis.call('HDEL', META, 'dirty')
    redis.call('HSET', META, 'checkpoint_ms', tonumber(cutoff_ms) + window_ms)
    checkpoint = 1
  end
end
return {removed, count, cleared, redis.call('ZRANGE', CLOSED, 0, -1), open_end, calendar and 1 or 0, checkpoint}
