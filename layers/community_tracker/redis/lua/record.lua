-- Records one beacon for one visitor: a page view, or activity of a visitor already present.
-- Contract: scripts.RecordKeys / scripts.RecordArgs.
local PEAK_DAY = KEYS[6]
local PEAK_WEEK = KEYS[7]
local PEAK_MONTH = KEYS[8]
local UNIQUE_DAY = KEYS[9]
local UNIQUE_WEEK = KEYS[10]
local UNIQUE_MONTH = KEYS[11]
local PAIR_HISTORY = KEYS[12]
local SERIES = KEYS[13]
local DROPS = KEYS[14]
local EVENT = KEYS[15]
local RATE = KEYS[16]
local USER_COMMUNITIES = KEYS[17]
local now_ms = tonumber(ARGV[1])
local cutoff_ms = ARGV[2]
local member = ARGV[3]
local pages = tonumber(ARGV[4])
local must_be_present = ARGV[5]
local is_authenticated = ARGV[6]
local community_division = ARGV[7]
local visitor_division = ARGV[8]
local user_id = ARGV[9]
local merge_member = ARGV[10]
local has_event_id = ARGV[11]
local dedup_seconds = ARGV[12]
local rate_limit = tonumber(ARGV[13])
local minute = ARGV[14]
local day_expire_at = ARGV[15]
local week_expire_at = ARGV[16]
local month_expire_at = ARGV[17]
local series_expire_at = ARGV[18]
local history_expire_at = ARGV[19]
local community_id = ARGV[20]
local user_set_ttl_ms = ARGV[21]
local rate_counter_seconds = ARGV[22]
-- Returns {status, live count, needs index, recorded at}; status 1 counted, 2 duplicate,
-- 3 rate limited, 4 not present. "Recorded at" is when the event id was first seen (now, unless a
-- duplicate), so a retried beacon maps to the same DynamoDB key.
prune(cutoff_ms)

local function count_drop(reason)
  if redis.call('HINCRBY', DROPS, reason, 1) == 1 then
    redis.call('EXPIREAT', DROPS, history_expire_at)
  end
end

if rate_limit > 0 then
  local hits = redis.call('INCR', RATE)
  if hits == 1 then
    redis.call('EXPIRE', RATE, rate_counter_seconds)
  end
  if hits > rate_limit then
    count_drop('rate_limited')
    return {3, redis.call('ZCARD', LIVE), 0, now_ms}
  end
end

if has_event_id == '1' and not redis.call('SET', EVENT, now_ms, 'NX', 'EX', dedup_seconds) then
  count_drop('duplicate')
  return {2, redis.call('ZCARD', LIVE), 0, redis.call('GET', EVENT)}
end

-- Login merge: the anonymous entry of the same browser is folded into this visitor.
local merged = nil
if merge_member ~= '' and merge_member ~= member then
  local raw = redis.call('HGET', VISITORS, merge_member)
  if raw then
    merged = decode(raw)
    forget(merge_member)
  end
end

local raw = redis.call('HGET', VISITORS, member)
if not raw and not merged and must_be_present == '1' then
  return {4, redis.call('ZCARD', LIVE), 0, now_ms}
end

local rec
if raw then
  rec = decode(raw)
else
  rec = {j = now_ms, p = 0}
end
if merged then
  rec.j = math.min(rec.j, merged.j)
  rec.p = rec.p + merged.p
end
rec.p = rec.p + pages
-- A returning visitor usually has the same attributes: then the derived counts stay as they are.
if not raw or rec.a ~= is_authenticated or rec.c ~= community_division or rec.d ~= visitor_division then
  if raw then
    contribute(rec, -1)
  end
  rec.a, rec.c, rec.d = is_authenticated, community_division, visitor_division
  contribute(rec, 1)
end
rec.u = user_id
redis.call('HSET', VISITORS, member, encode(rec))
redis.call('ZADD', LIVE, now_ms, member)
local count = redis.call('ZCARD', LIVE)

-- A day lies inside its week and its month, so their peaks are never below the day's: only a
-- new daily peak can be a new weekly or monthly one. A bucket's keys (peak, unique visitors) are
-- created together, by its first visitor: that is when their expiry is set, once.
local buckets = {
  {peak = PEAK_DAY, unique = UNIQUE_DAY, expire_at = day_expire_at},
  {peak = PEAK_WEEK, unique = UNIQUE_WEEK, expire_at = week_expire_at},
  {peak = PEAK_MONTH, unique = UNIQUE_MONTH, expire_at = month_expire_at},
}
local day_peak = redis.call('HGET', PEAK_DAY, 'count')
if count > tonumber(day_peak or '0') then
  for i, b in ipairs(buckets) do
    local peak = i == 1 and day_peak or redis.call('HGET', b.peak, 'count')
    if count > tonumber(peak or '0') then
      redis.call('HSET', b.peak, 'count', count, 'at', now_ms)
      if not peak then
        redis.call('EXPIREAT', b.peak, b.expire_at)
        b.new = true
      end
    end
  end
end
for _, b in ipairs(buckets) do
  -- The first counted beacon of a bucket creates its unique-visitor key with the peak, even a
  -- heartbeat (that visitor is there in the new bucket), so both get their expiry here.
  if pages > 0 or not raw or b.new then
    redis.call('PFADD', b.unique, member)
  end
  if b.new then
    redis.call('EXPIREAT', b.unique, b.expire_at)
  end
end
if pages > 0 and is_cross(rec) then
  if redis.call('HINCRBY', PAIR_HISTORY, rec.d .. '>' .. rec.c, 1) == 1 then
    redis.call('EXPIREAT', PAIR_HISTORY, history_expire_at)
  end
end
sample(SERIES, minute, count, series_expire_at)

if USER_COMMUNITIES then
  redis.call('ZADD', USER_COMMUNITIES, now_ms, community_id)
  redis.call('PEXPIRE', USER_COMMUNITIES, user_set_ttl_ms)
end

local needs_index = redis.call('HSETNX', COUNTS, 'indexed', '1')
return {1, count, needs_index, now_ms}
