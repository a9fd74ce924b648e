-- Every aggregate of one community, exact (stale people are discounted, not pruned: a read
-- writes nothing but a bucket that opens, see below), in one round trip.
-- KEYS[9..11] peak day/week/month, [12..14] unique visitors day/week/month, [15] meta, [16]
-- closed, [17..] series hours.
-- Contract: scripts.ReadStateKeys / scripts.ReadStateArgs.
local PEAK_DAY = KEYS[9]
local PEAK_WEEK = KEYS[10]
local PEAK_MONTH = KEYS[11]
local UNIQUE_DAY = KEYS[12]
local UNIQUE_WEEK = KEYS[13]
local UNIQUE_MONTH = KEYS[14]
local META = KEYS[15]
local CLOSED = KEYS[16]
local cutoff_ms = ARGV[1]
local present_after_ms = ARGV[2]
local community_version = ARGV[3]
local day_bucket = ARGV[4]
local week_bucket = ARGV[5]
local month_bucket = ARGV[6]
local window_ms = tonumber(ARGV[7])
local bucket_margin_ms = tonumber(ARGV[8])
local now_ms = tonumber(ARGV[9])
local with_sketches = ARGV[10]
local others_total = tonumber(ARGV[11])
local others_opened_day = tonumber(ARGV[12])
local others_opened_week = tonumber(ARGV[13])
local others_opened_month = tonumber(ARGV[14])
-- '1': the live context too (community.lua, live_context).
local with_context = ARGV[15]
local FIRST_SERIES = 17
-- A split community (README, "One community in N parts"): the other parts are read first, each
-- with `with_sketches` '1' (its raw unique-visitor sketches come back too); part 0 is read last
-- with their live count (`others_total`; -1: no other parts), their counts at each bucket's start
-- and, after the fixed ARGV, their sketches, day, week and month per part: it folds them into its
-- own figures (calendar.lua), which are then the community's.
local others_sketches = {unpack(ARGV, 16)}
-- Returns the aggregates below, or {false, installed version, calendar, division} when the
-- community's registration in Redis is not the caller's (calendar.lua; nothing is written then).
-- A bucket that starts before this read is opened first, so its peak is never below the people
-- live in it: the one write a read may make, once per bucket.
local calendar, installed = plan_calendar(META, community_version, {day_bucket, week_bucket, month_bucket})
if not calendar then
  return {false, installed[1], installed[2], installed[3]}
end
local calendar_keys = {
  {peak = PEAK_DAY, unique = UNIQUE_DAY},
  {peak = PEAK_WEEK, unique = UNIQUE_WEEK},
  {peak = PEAK_MONTH, unique = UNIQUE_MONTH},
}
open_buckets(calendar, calendar_keys, META, CLOSED, window_ms, bucket_margin_ms)
local total, counts, divisions, pairs_, connections = live_counts(cutoff_ms)
if others_total >= 0 then
  local sketches = {{}, {}, {}}
  for i, sketch in ipairs(others_sketches) do
    local period = sketches[(i - 1) % 3 + 1]
    period[#period + 1] = sketch
  end
  fold_parts(calendar, calendar_keys, META, CLOSED, bucket_margin_ms, now_ms, total + others_total,
    {others_opened_day, others_opened_week, others_opened_month}, sketches, STATE_PREFIX .. 'uv:fold')
end
local opened = {}
local own_sketches = {}
for i, keys in ipairs(calendar_keys) do
  opened[i] = tonumber(redis.call('HGET', keys.peak, 'opened') or '0')
  if with_sketches == '1' then
    own_sketches[i] = redis.call('GET', keys.unique) or ''
  end
end
local series = {}
for i = FIRST_SERIES, #KEYS do
  series[#series + 1] = redis.call('HGETALL', KEYS[i])
end
return {
  total,
  counts,
  divisions,
  pairs_,
  redis.call('HMGET', PEAK_DAY, 'count', 'at'),
  redis.call('HMGET', PEAK_WEEK, 'count', 'at'),
  redis.call('HMGET', PEAK_MONTH, 'count', 'at'),
  redis.call('PFCOUNT', UNIQUE_DAY),
  redis.call('PFCOUNT', UNIQUE_WEEK),
  redis.call('PFCOUNT', UNIQUE_MONTH),
  series,
  redis.call('ZCOUNT', PRESENT, '(' .. present_after_ms, '+inf'),
  connections,
  opened,
  own_sketches,
  with_context == '1' and live_context(cutoff_ms) or false,
}
