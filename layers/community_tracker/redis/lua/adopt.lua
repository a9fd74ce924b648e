-- Puts the people evict.lua took out of another part of a split community into this one, with
-- their connections and what they count for (README, "One community in N parts"). Someone live
-- here already under the same key (a beacon that came first during a change of the number of
-- parts) stays one person: the earliest arrival, the pages of both, the connections of both.
-- Buckets that started are opened first, before the people arrive.
-- Contract: scripts.AdoptKeys (those of evict) / scripts.AdoptArgs; after them, ARGV is evict.lua's
-- answer.
local PEAK_DAY = KEYS[9]
local PEAK_WEEK = KEYS[10]
local PEAK_MONTH = KEYS[11]
local UNIQUE_DAY = KEYS[12]
local UNIQUE_WEEK = KEYS[13]
local UNIQUE_MONTH = KEYS[14]
local META = KEYS[15]
local CLOSED = KEYS[16]
local cutoff_ms = ARGV[1]
local community_version = ARGV[2]
local day_bucket = ARGV[3]
local week_bucket = ARGV[4]
local month_bucket = ARGV[5]
local window_ms = tonumber(ARGV[6])
local presence_ms = tonumber(ARGV[7])
local bucket_margin_ms = tonumber(ARGV[8])
local people = {unpack(ARGV, 9)}
-- Returns how many people arrived (merged ones included).
local calendar = plan_calendar(META, community_version, {day_bucket, week_bucket, month_bucket})
local BUCKET_KEYS = {
  {peak = PEAK_DAY, unique = UNIQUE_DAY},
  {peak = PEAK_WEEK, unique = UNIQUE_WEEK},
  {peak = PEAK_MONTH, unique = UNIQUE_MONTH},
}
if calendar then
  open_buckets(calendar, BUCKET_KEYS, META, CLOSED, window_ms, bucket_margin_ms)
end
prune(cutoff_ms, true)

-- One person arriving: merged with themselves if live here already; answers 1.
local function adopt_person(member, rec)
  local here = redis.call('HGET', VISITORS, member)
  if here then
    local mine = decode(here)
    mine.j = math.min(mine.j, rec.j)
    mine.p = mine.p + rec.p
    mine.l = math.max(mine.l, rec.l)
    for _, conn in ipairs(rec.k) do
      mine.k = without(mine.k, conn)
      mine.k[#mine.k + 1] = conn
    end
    rec = mine
  else
    contribute(rec, 1)
    redis.call('SADD', GROUPS, group_of(rec))
    -- A unique visitor of this part's open buckets too: the part they came from may be one no
    -- read merges any more (a change of N retires it), and one already in the union adds nothing.
    for i, keys in ipairs(calendar and BUCKET_KEYS or {}) do
      if redis.call('PFADD', keys.unique, member) == 1 then
        expire_at_ms(keys.unique, bucket_end(calendar[i]) + bucket_margin_ms)
        calendar_changed(calendar[i], META, CLOSED, bucket_margin_ms)
      end
    end
    -- Their live context comes with them under the values their record holds (evict.lua's
    -- forget took it back there); a part may so hold a few values past its cap.
    for d, value in ipairs(rec.x or {}) do
      redis.call('ZINCRBY', CONTEXT_KEYS[d], 1, value)
    end
  end
  redis.call('HSET', VISITORS, member, encode(rec))
  local live_score, present_score = person_scores(rec, window_ms - presence_ms)
  set_live(member, rec, live_score)
  redis.call('ZADD', PRESENT, present_score, member)
  return 1
end

-- A connection of nobody (person '': a left tab whose person folded away) just comes with its entry.
local arrived = 0
local i = 1
while i <= #people do
  local member, n = people[i], tonumber(people[i + 2])
  for c = 0, n - 1 do
    local at = i + 3 + 3 * c
    redis.call('ZADD', CONNS, people[at + 1], people[at])
    redis.call('HSET', CONN_PEOPLE, people[at], people[at + 2])
  end
  if member ~= '' then
    arrived = arrived + adopt_person(member, decode(people[i + 1]))
  end
  i = i + 3 + 3 * n
end
return arrived
