-- Shared prelude of every script that touches one community (prepended by redis/scripts.py).
-- KEYS[1..5] are always that community's live state (scripts.CommunityState); all of its keys
-- share the hash tag {c:<id>}.
local LIVE = KEYS[1]
local VISITORS = KEYS[2]
local COUNTS = KEYS[3]
local DIVISIONS = KEYS[4]
local PAIRS = KEYS[5]

-- Derived counters only ever move through here, so a field at zero disappears.
local function bump(key, field, delta)
  if redis.call('HINCRBY', key, field, delta) <= 0 then
    redis.call('HDEL', key, field)
  end
end

-- A visitor record: joined_ms|pages|auth(0/1)|community_division|division|user_id
-- ('' for an unknown division or an anonymous visitor; the user id is last since it may hold '|').
local function decode(raw)
  local j, p, a, c, d, u = string.match(raw, '^(%d+)|(%d+)|([01])|([^|]*)|([^|]*)|(.*)$')
  return {j = tonumber(j), p = tonumber(p), a = a, c = c, d = d, u = u}
end

local function encode(r)
  return string.format('%d|%d|%s|%s|%s|%s', r.j, r.p, r.a, r.c, r.d, r.u)
end

local function is_cross(r)
  return r.d ~= '' and r.c ~= '' and r.d ~= r.c
end

-- Adds (delta 1) or takes back (delta -1) what a live visitor contributes to the counts; `change`
-- applies each (key, field, delta), `bump` unless the caller collects them first.
local function contribute(r, delta, change)
  change = change or bump
  change(COUNTS, r.a == '1' and 'auth' or 'anon', delta)
  change(DIVISIONS, r.d, delta)
  if is_cross(r) then
    change(COUNTS, 'cross', delta)
    change(PAIRS, r.d .. '>' .. r.c, delta)
  end
end

local function forget(member)
  local raw = redis.call('HGET', VISITORS, member)
  if not raw then
    return 0
  end
  contribute(decode(raw), -1)
  redis.call('HDEL', VISITORS, member)
  redis.call('ZREM', LIVE, member)
  return 1
end

-- Drops every visitor whose last activity is at or before `cutoff` (ms), with its contributions.
-- Batched: the records are read with one HMGET per chunk and each derived counter is changed
-- once per group, so the cost is a few calls, not a few per stale visitor.
local PRUNE_CHUNK = 1000 -- well under Lua's unpack limit
local function prune(cutoff)
  local stale = redis.call('ZRANGE', LIVE, '-inf', cutoff, 'BYSCORE')
  local n = #stale
  if n == 0 then
    return 0
  end
  -- Stale visitors are grouped by what they count towards (auth|community division|division):
  -- one cheap match per record; then the groups' contributions are summed per counter, and each
  -- counter changes once.
  local groups = {}
  for first = 1, n, PRUNE_CHUNK do
    local chunk = {unpack(stale, first, math.min(first + PRUNE_CHUNK - 1, n))}
    for _, raw in ipairs(redis.call('HMGET', VISITORS, unpack(chunk))) do
      if raw then
        local group = string.match(raw, '^%d+|%d+|([01]|[^|]*|[^|]*)|')
        groups[group] = (groups[group] or 0) + 1
      end
    end
    redis.call('HDEL', VISITORS, unpack(chunk))
  end
  local deltas = {[COUNTS] = {}, [DIVISIONS] = {}, [PAIRS] = {}}
  local function collect(key, field, delta)
    deltas[key][field] = (deltas[key][field] or 0) + delta
  end
  for group, count in pairs(groups) do
    local a, c, d = string.match(group, '^([01])|([^|]*)|([^|]*)$')
    contribute({a = a, c = c, d = d}, -count, collect)
  end
  for key, fields in pairs(deltas) do
    for field, delta in pairs(fields) do
      bump(key, field, delta)
    end
  end
  redis.call('ZREMRANGEBYSCORE', LIVE, '-inf', cutoff)
  return n
end

-- Keeps the highest count seen in a per-minute series field (the hour's key gets its expiry
-- when one of its minutes is first written).
local function sample(series_key, minute, count, expire_at)
  local seen = redis.call('HGET', series_key, minute)
  if count > tonumber(seen or '0') then
    redis.call('HSET', series_key, minute, count)
    if not seen then
      redis.call('EXPIREAT', series_key, expire_at)
    end
  end
end
