-- Cleanup's fold of a split community's other parts into part 0 (calendar.lua, fold_parts), after
-- it pruned them all. Contract: scripts.FoldKeys / scripts.FoldArgs; after them, ARGV holds the
-- other parts' sketches, day, week and month per part.
local PEAK_DAY = KEYS[9]
local PEAK_WEEK = KEYS[10]
local PEAK_MONTH = KEYS[11]
local UNIQUE_DAY = KEYS[12]
local UNIQUE_WEEK = KEYS[13]
local UNIQUE_MONTH = KEYS[14]
local META = KEYS[15]
local CLOSED = KEYS[16]
local now_ms = tonumber(ARGV[1])
local community_version = ARGV[2]
local day_bucket = ARGV[3]
local week_bucket = ARGV[4]
local month_bucket = ARGV[5]
local bucket_margin_ms = tonumber(ARGV[6])
local total = tonumber(ARGV[7])
local others_opened_day = tonumber(ARGV[8])
local others_opened_week = tonumber(ARGV[9])
local others_opened_month = tonumber(ARGV[10])
local others_sketches = {unpack(ARGV, 11)}
-- Returns 1 when folded, 0 when the registration named is not Redis's (nothing written).
local calendar = plan_calendar(META, community_version, {day_bucket, week_bucket, month_bucket})
if not calendar then
  return 0
end
local sketches = {{}, {}, {}}
for i, sketch in ipairs(others_sketches) do
  local period = sketches[(i - 1) % 3 + 1]
  period[#period + 1] = sketch
end
fold_parts(calendar, {
  {peak = PEAK_DAY, unique = UNIQUE_DAY},
  {peak = PEAK_WEEK, unique = UNIQUE_WEEK},
  {peak = PEAK_MONTH, unique = UNIQUE_MONTH},
}, META, CLOSED, bucket_margin_ms, now_ms, total,
  {others_opened_day, others_opened_week, others_opened_month}, sketches, STATE_PREFIX .. 'uv:fold')
return 1
