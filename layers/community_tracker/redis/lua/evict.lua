-- Takes people out of one part of a split community, with their connections and everything they
-- count for, and answers them for adopt.lua to put in another part (README, "One community in N
-- parts"): the person a tab moving to another part leaves, a person live under their other key,
-- everyone whose part changes with the number of parts. Buckets that started are opened first, so
-- the people taken out still count here at a bucket's start.
-- Contract: scripts.EvictKeys / scripts.EvictArgs; after them, ARGV names the people, or (by_tab
-- '1') tabs, whose people go.
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
local bucket_margin_ms = tonumber(ARGV[7])
local by_tab = ARGV[8]
local names = {unpack(ARGV, 9)}
-- Returns, flat, per person taken: person, record, how many connections, then per connection its
-- key, score and entry. A tab whose person is gone already (folded into another: a left tab in its
-- grace) goes as a connection of nobody (person and record ''), so it is still counted where it
-- goes until its grace ends, as it is in one part.
local calendar = plan_calendar(META, community_version, {day_bucket, week_bucket, month_bucket})
if calendar then
  open_buckets(calendar, {
    {peak = PEAK_DAY, unique = UNIQUE_DAY},
    {peak = PEAK_WEEK, unique = UNIQUE_WEEK},
    {peak = PEAK_MONTH, unique = UNIQUE_MONTH},
  }, META, CLOSED, window_ms, bucket_margin_ms)
end
prune(cutoff_ms)

local out = {}
for _, name in ipairs(names) do
  local member = name
  if by_tab == '1' then
    local state = redis.call('HGET', CONN_PEOPLE, name)
    member = state and conn_person(state)
    if member and redis.call('HEXISTS', VISITORS, member) == 0 then
      local score = redis.call('ZSCORE', CONNS, name)
      if score then
        for _, value in ipairs({'', '', 1, name, score, state}) do
          out[#out + 1] = value
        end
      end
      redis.call('HDEL', CONN_PEOPLE, name)
      redis.call('ZREM', CONNS, name)
      member = nil
    end
  end
  local raw = member and redis.call('HGET', VISITORS, member)
  if raw then
    local rec = forget(member, decode(raw))
    local conns = {}
    for _, conn in ipairs(rec.k) do
      local score = redis.call('ZSCORE', CONNS, conn)
      local entry = redis.call('HGET', CONN_PEOPLE, conn)
      if score and entry then
        conns[#conns + 1] = conn
        conns[#conns + 1] = score
        conns[#conns + 1] = entry
      end
      redis.call('HDEL', CONN_PEOPLE, conn)
      redis.call('ZREM', CONNS, conn)
    end
    out[#out + 1] = member
    out[#out + 1] = raw
    out[#out + 1] = #conns / 3
    for _, value in ipairs(conns) do
      out[#out + 1] = value
    end
  end
end
return out
