-- A heartbeat of a live connection, the beacon sent most (4 in 5): only what it must do. Anything
-- else is record.lua's, which handles every beacon: a registration or open bucket other than the
-- caller's (a bucket to open, a zone or division that changed), a tab that belongs to someone else
-- (a login or logout), changed attributes, a connection over its rate limit, a person known only
-- under the previous key. Contract: scripts.HeartbeatKeys / scripts.HeartbeatArgs.
local SERIES = KEYS[9]
local META = KEYS[10]
local USER_COMMUNITIES = KEYS[11]
local now_ms = tonumber(ARGV[1])
local cutoff_ms = ARGV[2]
local member = ARGV[3]
-- alt_member: record.lua looks it up; here `look_elsewhere` says whether to go there.
local alt_member = ARGV[4]
local connection = ARGV[5]
local is_authenticated = ARGV[6]
local community_division = ARGV[7]
local visitor_division = ARGV[8]
local look_elsewhere = ARGV[9]
local connection_rate_limit = tonumber(ARGV[10])
local minute = ARGV[11]
local series_expire_at = ARGV[12]
local community_id = ARGV[13]
local user_set_ttl_ms = ARGV[14]
local index_refresh_ms = tonumber(ARGV[15])
local community_version = ARGV[16]
local day_bucket = ARGV[17]
local week_bucket = ARGV[18]
local month_bucket = ARGV[19]
-- Returns {status, live count, needs index, recorded at} as record.lua does (1 counted, 4 not
-- present), or {7} for a beacon to send to record.lua instead; nothing is written then.
local ELSEWHERE = {7, 0, 0, now_ms}
-- The caller's registration and buckets are the open ones (calendar.lua), so nothing in the
-- calendar is due: a bucket opens with everyone live in it, and a heartbeat raises no count.
local open = redis.call('HMGET', META, 'version', 'day', 'week', 'month')
if (open[1] or '') ~= community_version or open[2] ~= day_bucket or open[3] ~= week_bucket or open[4] ~= month_bucket then
  return ELSEWHERE
end
prune(cutoff_ms, true)

local state = redis.call('HGET', CONN_PEOPLE, connection)
local raw = redis.call('HGET', VISITORS, member)
if not raw then
  -- Nobody to keep live, unless the tab is someone else's, the person is under another key, or
  -- (a split community) either is in another part.
  if state or look_elsewhere == '1' then
    return ELSEWHERE
  end
  return {4, redis.call('ZCARD', LIVE), 0, now_ms}
end
if not state then
  return ELSEWHERE
end
local _open, owner, beats_minute, beats = conn_entry(state)
if owner ~= member then
  return ELSEWHERE
end
beats = beats_minute == minute and beats + 1 or 1
if connection_rate_limit > 0 and beats > connection_rate_limit then
  return ELSEWHERE -- where the drop is counted
end
local rec = decode(raw)
local listed = false
for _, conn in ipairs(rec.k) do
  listed = listed or conn == connection
end
-- A live person's heartbeat on a live connection of theirs, with the attributes they have.
if not listed or rec.a ~= is_authenticated or rec.c ~= community_division or rec.d ~= visitor_division then
  return ELSEWHERE
end

rec.l = now_ms
local count = hear(member, rec, connection, state, now_ms, connection_rate_limit > 0, minute, beats)
sample(SERIES, minute, count, series_expire_at)
return counted_answer(count, now_ms, USER_COMMUNITIES, community_id, user_set_ttl_ms, index_refresh_ms)
