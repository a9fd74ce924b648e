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
local EVENTS = KEYS[18]
local CLIENT_RATES = KEYS[19]
local CLIENT_PEOPLE = KEYS[20]
local META = KEYS[21]
local CLOSED = KEYS[22]
local USER_COMMUNITIES = KEYS[23]
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
local event = ARGV[12]
local dedup_ms = tonumber(ARGV[13])
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
local rates_expire_at = ARGV[25]
local window_ms = tonumber(ARGV[26])
local presence_ms = tonumber(ARGV[27])
local index_refresh_ms = tonumber(ARGV[28])
local community_version = ARGV[29]
local bucket_margin_ms = tonumber(ARGV[30])
local client = ARGV[31]
local check_tab = ARGV[32]
local check_alt = ARGV[33]
-- The page view's context ('' keeps the person's value: community.lua, set_context).
local page = ARGV[34]
local referrer = ARGV[35]
local device = ARGV[36]
local country = ARGV[37]
local context_cap = tonumber(ARGV[38])
-- Returns {status, live count, needs index, recorded at}; status 1 counted, 2 duplicate,
-- 3 rate limited, 4 not present, 5 too many new anonymous people from one client. "Recorded
-- at" is when the event id was first seen (now, unless a duplicate). Status 6: the community's
-- registration in Redis is not the caller's, then {6, live count, 0, now, installed version,
-- calendar, division} (calendar.lua), and nothing was written. Status 8, in a split community:
-- someone to bring from another part first (see below); nothing of the beacon was written.
--
-- A heartbeat of a live connection is the most common beacon by far (4 in 5): heartbeat.lua
-- takes most of them; those it sends here still skip what only a page view needs (no dedup
-- marker: the caller sends no event id; no per-client counter: a heartbeat creates nobody).
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
prune(cutoff_ms, true)

-- In a split community (README, "One community in N parts") a tab unknown in this part may be
-- someone's in another (a login, a logout: `check_tab`), and a person not live here may be live
-- under their other key in the part of that key (`check_alt`). The caller then finds them (the
-- beacon goes to the other key's part, the tab's person comes here: evict.lua, adopt.lua) and
-- sends the beacon again, without the checks. {8, live count, 0, now, the person is live here}.
local member_here = redis.call('HEXISTS', VISITORS, member)
if (check_tab == '1' and redis.call('HEXISTS', CONN_PEOPLE, connection) == 0)
  or (check_alt == '1' and member_here == 0 and redis.call('HEXISTS', VISITORS, alt_member) == 0) then
  return {8, redis.call('ZCARD', LIVE), 0, now_ms, member_here}
end

local function count_drop(reason)
  if redis.call('HINCRBY', DROPS, reason, 1) == 1 then
    redis.call('EXPIREAT', DROPS, history_expire_at)
  end
end

-- One hash per community and minute, one field per client: no key per client.
local function over_client_limit()
  if client_rate_limit <= 0 then
    return false
  end
  local hits = redis.call('HINCRBY', CLIENT_RATES, client, 1)
  if hits == 1 then
    redis.call('EXPIREAT', CLIENT_RATES, rates_expire_at)
  end
  return hits > client_rate_limit
end

local function counted(count)
  return counted_answer(count, now_ms, USER_COMMUNITIES, community_id, user_set_ttl_ms, index_refresh_ms)
end

-- The connection's entry: whose it is, and its beacons this minute (the per-connection limit),
-- written back below with the rest of the beacon.
local owner_state = redis.call('HGET', CONN_PEOPLE, connection)
local owner, beats_minute, beats = nil, nil, 0
if owner_state then
  local _open
  _open, owner, beats_minute, beats = conn_entry(owner_state)
end
beats = beats_minute == minute and beats + 1 or 1
-- Page views (which make people and connections) count against their client too.
if (connection_rate_limit > 0 and beats > connection_rate_limit)
  or (must_be_present == '0' and over_client_limit()) then
  count_drop('rate_limited')
  return {3, redis.call('ZCARD', LIVE), 0, now_ms}
end

-- Event ids seen within the dedup window: one sorted set per community (digest -> when first
-- seen), trimmed as it goes, instead of a key per event.
if event ~= '' then
  if redis.call('ZADD', EVENTS, 'NX', now_ms, event) == 0 then
    local seen = tonumber(redis.call('ZSCORE', EVENTS, event))
    if now_ms - seen < dedup_ms then
      count_drop('duplicate')
      -- A retry whose first try timed out after running: its index registration may be lost.
      redis.call('HSET', COUNTS, 'indexed', now_ms)
      return {2, redis.call('ZCARD', LIVE), 1, seen}
    end
    redis.call('ZADD', EVENTS, now_ms, event)
  end
  redis.call('ZREMRANGEBYSCORE', EVENTS, '-inf', now_ms - dedup_ms)
  redis.call('PEXPIRE', EVENTS, dedup_ms)
end

-- Past midnight a cookieless person's key changes; one still live under yesterday's key stays
-- that person. (After the prune a person has a record exactly while they are live.)
local raw = redis.call('HGET', VISITORS, member)
if not raw and alt_member ~= '' then
  local alt_raw = redis.call('HGET', VISITORS, alt_member)
  if alt_raw then
    member, raw = alt_member, alt_raw
  end
end

-- The connection may belong to someone else: the same tab after a login or a logout. It moves
-- to this person; the person it leaves is folded into this one when it has no other open
-- connection (one human, now known differently), else it keeps its other tabs.
local folded = nil
local previous = nil
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

-- A heartbeat never creates a person, except the one a tab's person becomes (a fold).
if not raw and must_be_present == '1' and not (previous and not keeps_others) then
  return {4, redis.call('ZCARD', LIVE), 0, now_ms}
end

if previous and keeps_others then
  local live_score, present_score = person_scores(previous, window_ms - presence_ms)
  redis.call('HSET', VISITORS, owner, encode(previous))
  set_live(owner, previous, live_score)
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
    redis.call('ZREM', group_key(group_of(rec)), member)
  end
  rec.a, rec.c, rec.d = is_authenticated, community_division, visitor_division
  contribute(rec, 1)
  redis.call('SADD', GROUPS, group_of(rec))
end
rec.u = user_id
set_context(rec, {page, referrer, device, country}, folded and folded.x, context_cap)
if rec.k[#rec.k] ~= connection then
  rec.k = without(rec.k, connection)
  rec.k[#rec.k + 1] = connection
end
local count = hear(member, rec, connection, owner_state, now_ms, connection_rate_limit > 0, minute, beats)

-- A heartbeat of someone already live (not a fold) neither raised the count nor made anyone: in
-- open buckets their peaks are at least the count already (a bucket opens with the live count) and
-- they are a unique visitor (from when the bucket opened, or from the beacon that made them).
local all_open = true
for _, wanted in ipairs(calendar) do
  all_open = all_open and wanted.state == 'open'
end
if pages == 0 and raw and not folded and all_open then
  sample(SERIES, minute, count, series_expire_at)
  return counted(count)
end

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

return counted(count)
