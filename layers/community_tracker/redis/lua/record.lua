-- Records one beacon of one connection of one person: a page view, or activity (a heartbeat).
-- Contract: scripts.RecordKeys / scripts.RecordArgs.
local PEAK_DAY = KEYS[9]
local PEAK_WEEK = KEYS[10]
local PEAK_MONTH = KEYS[11]
local UNIQUE_DAY = KEYS[12]
local UNIQUE_WEEK = KEYS[13]
local UNIQUE_MONTH = KEYS[14]
local PAIR_HISTORY = KEYS[15]
local SERIES = KEYS[16]
local DROPS = KEYS[17]
local EVENT = KEYS[18]
local CLIENT_RATE = KEYS[19]
local CONNECTION_RATE = KEYS[20]
local CLIENT_PEOPLE = KEYS[21]
local META = KEYS[22]
local CLOSED = KEYS[23]
local USER_COMMUNITIES = KEYS[24]
local now_ms = tonumber(ARGV[1])
local cutoff_ms = ARGV[2]
local member = ARGV[3]
local alt_member = ARGV[4]
local connection = ARGV[5]
local pages = tonumber(ARGV[6])
local must_be_present = ARGV[7]
local is_authenticated = ARGV[8]
local community_division = ARGV[9]
local visitor_division = ARGV[10]
local user_id = ARGV[11]
local has_event_id = ARGV[12]
local dedup_seconds = ARGV[13]
local client_rate_limit = tonumber(ARGV[14])
local connection_rate_limit = tonumber(ARGV[15])
local people_per_client = tonumber(ARGV[16])
local minute = ARGV[17]
local day_bucket = ARGV[18]
local week_bucket = ARGV[19]
local month_bucket = ARGV[20]
local series_expire_at = ARGV[21]
local history_expire_at = ARGV[22]
local community_id = ARGV[23]
local user_set_ttl_ms = ARGV[24]
local rate_counter_seconds = ARGV[25]
local window_ms = tonumber(ARGV[26])
local presence_ms = tonumber(ARGV[27])
local index_refresh_ms = tonumber(ARGV[28])
local community_version = ARGV[29]
local bucket_margin_ms = tonumber(ARGV[30])
-- Returns {status, live count, needs index, recorded at}; status 1 counted, 2 duplicate,
-- 3 rate limited, 4 not present, 5 too many new anonymous people from one client. "Recorded
-- at" is when the event id was first seen (now, unless a duplicate). Status 6: the community's
-- registration in Redis is not the caller's, then {6, live count, 0, now, installed version,
-- calendar, division} (calendar.lua), and nothing was written.
local CALENDAR_KEYS = {
  {peak = PEAK_DAY, unique = UNIQUE_DAY},
  {peak = PEAK_WEEK, unique = UNIQUE_WEEK},
  {peak = PEAK_MONTH, unique = UNIQUE_MONTH},
}
local calendar, installed = plan_calendar(META, community_version, {day_bucket, week_bucket, month_bucket})
if not calendar then
  return {6, redis.call('ZCARD', LIVE), 0, now_ms, installed[1], installed[2], installed[3]}
end
open_buckets(calendar, CALENDAR_KEYS, META, CLOSED, window_ms, bucket_margin_ms)
prune(cutoff_ms)

local function count_drop(reason)
  if redis.call('HINCRBY', DROPS, reason, 1) == 1 then
    redis.call('EXPIREAT', DROPS, history_expire_at)
  end
end

local function over_limit(key, limit)
  if limit <= 0 then
    return false
  end
  local hits = redis.call('INCR', key)
  if hits == 1 then
    redis.call('EXPIRE', key, rate_counter_seconds)
  end
  return hits > limit
end

-- The registration in cleanup's index is refreshed now and then, so a registration lost
-- between this script and the caller's ZADD (a timeout, a crash) heals by itself.
local function needs_index()
  local indexed = tonumber(redis.call('HGET', COUNTS, 'indexed') or '0')
  if now_ms - indexed < index_refresh_ms then
    return 0
  end
  redis.call('HSET', COUNTS, 'indexed', now_ms)
  return 1
end

if over_limit(CONNECTION_RATE, connection_rate_limit) or over_limit(CLIENT_RATE, client_rate_limit) then
  count_drop('rate_limited')
  return {3, redis.call('ZCARD', LIVE), 0, now_ms}
end

if has_event_id == '1' and not redis.call('SET', EVENT, now_ms, 'NX', 'EX', dedup_seconds) then
  count_drop('duplicate')
  -- A retry whose first try timed out after running: its index registration may be lost.
  redis.call('HSET', COUNTS, 'indexed', now_ms)
  return {2, redis.call('ZCARD', LIVE), 1, redis.call('GET', EVENT)}
end

-- Past midnight a cookieless person's key changes; one still live under yesterday's key stays
-- that person.
if alt_member ~= '' and not redis.call('ZSCORE', LIVE, member) and redis.call('ZSCORE', LIVE, alt_member) then
  member = alt_member
end

-- The connection may belong to someone else: the same tab after a login or a logout. It moves
-- to this person; the person it leaves is folded into this one when it has no other open
-- connection (one human, now known differently), else it keeps its other tabs.
local folded = nil
local previous = nil
local owner_state = redis.call('HGET', CONN_PEOPLE, connection)
local owner = owner_state and string.sub(owner_state, 2) or nil
local owner_raw = owner and owner ~= member and redis.call('HGET', VISITORS, owner)
local keeps_others = false
if owner_raw then
  previous = decode(owner_raw)
  previous.k = without(previous.k, connection)
  for _, conn in ipairs(previous.k) do
    if string.sub(redis.call('HGET', CONN_PEOPLE, conn) or '0', 1, 1) == '1' then
      keeps_others = true
    end
  end
end

local raw = redis.call('HGET', VISITORS, member)
-- A heartbeat never creates a person, except the one a tab's person becomes (a fold).
if not raw and must_be_present == '1' and not (previous and not keeps_others) then
  return {4, redis.call('ZCARD', LIVE), 0, now_ms}
end

if previous and keeps_others then
  local live_score, present_score = person_scores(previous, window_ms - presence_ms)
  redis.call('HSET', VISITORS, owner, encode(previous))
  redis.call('ZADD', LIVE, live_score, owner)
  redis.call('ZADD', PRESENT, present_score, owner)
elseif previous then
  folded = forget(owner, previous)
end

-- A new anonymous person counts against their client's share of the community, so one client
-- cannot make up people without bound.
if not raw and not folded and is_authenticated == '0' and people_per_client > 0 then
  redis.call('ZREMRANGEBYSCORE', CLIENT_PEOPLE, '-inf', cutoff_ms)
  if redis.call('ZCARD', CLIENT_PEOPLE) >= people_per_client then
    count_drop('too_many_people')
    return {5, redis.call('ZCARD', LIVE), 0, now_ms}
  end
  redis.call('ZADD', CLIENT_PEOPLE, now_ms, member)
  redis.call('PEXPIRE', CLIENT_PEOPLE, window_ms)
end

local rec
if raw then
  rec = decode(raw)
else
  rec = {j = now_ms, p = 0, l = now_ms, k = {}}
end
if folded then
  rec.j = math.min(rec.j, folded.j)
  rec.p = rec.p + folded.p
end
rec.p = rec.p + pages
rec.l = now_ms
-- A returning person usually has the same attributes: then the derived counts stay as they are.
if not raw or rec.a ~= is_authenticated or rec.c ~= community_division or rec.d ~= visitor_division then
  if raw then
    contribute(rec, -1)
  end
  rec.a, rec.c, rec.d = is_authenticated, community_division, visitor_division
  contribute(rec, 1)
end
rec.u = user_id
rec.k = without(rec.k, connection)
rec.k[#rec.k + 1] = connection
redis.call('HSET', VISITORS, member, encode(rec))
redis.call('HSET', CONN_PEOPLE, connection, '1' .. member)
redis.call('ZADD', CONNS, now_ms, connection)
redis.call('ZADD', LIVE, now_ms, member)
redis.call('ZADD', PRESENT, now_ms, member)
local count = redis.call('ZCARD', LIVE)

-- Calendar buckets (calendar.lua): a peak is the highest live count seen in its bucket; a person is
-- a unique visitor of a bucket from the beacon that makes them (everyone live when the bucket
-- opened is one already), so the heartbeats of people already here cost no PFADD. Each key is
-- given its expiry whenever it is written, so none is left without one, even re-created.
for i, keys in ipairs(CALENDAR_KEYS) do
  local wanted = calendar[i]
  local changed = false
  if count > tonumber(redis.call('HGET', keys.peak, 'count') or '0') then
    redis.call('HSET', keys.peak, 'count', count, 'at', now_ms)
    expire_at_ms(keys.peak, bucket_end(wanted) + bucket_margin_ms)
    changed = true
  end
  if not raw and redis.call('PFADD', keys.unique, member) == 1 then
    expire_at_ms(keys.unique, bucket_end(wanted) + bucket_margin_ms)
    changed = true
  end
  if changed then
    calendar_changed(wanted, META, CLOSED, bucket_margin_ms)
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

return {1, count, needs_index(), now_ms}
