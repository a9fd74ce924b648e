-- Shared prelude of every script that touches one community (prepended by redis/scripts.py).
-- KEYS[1..8] are always that community's live state (scripts.CommunityState); all of its keys
-- share the hash tag {c:<id>}.
local LIVE = KEYS[1]
local VISITORS = KEYS[2]
local COUNTS = KEYS[3]
local DIVISIONS = KEYS[4]
local PAIRS = KEYS[5]
local CONNS = KEYS[6]
local CONN_PEOPLE = KEYS[7]
local PRESENT = KEYS[8]

-- People and connections (README, "Presence"). LIVE scores each person by the moment they stop
-- being live minus the window, CONNS each connection the same way: a connection heard at t
-- scores t; one that left at t scores t + grace - window, so both go stale when its grace ends.
-- A person is live while any of their connections is: their LIVE score is the highest score of
-- their connections. PRESENT scores each person by when they stop being present minus the
-- presence window: heard at t scores t, a connection that left at t counts until t + grace.
-- CONN_PEOPLE maps a connection to '1' .. person (open) or '0' .. person (left, in its grace),
-- then, while the per-connection rate limit is on, '\n' .. minute .. ':' .. its beacons in that
-- minute (a person key never holds a newline): the counter lives in the entry a beacon rewrites
-- anyway, instead of a key per connection and minute.

-- Every live person is also in the sorted set of their group, what they count towards
-- (auth|community division|division), with their LIVE score; GROUPS lists the groups (a set,
-- emptied with the community). The counters below count everyone not pruned yet; a read, which
-- prunes nothing, takes back what each group's stale members still add (a ZCOUNT per group), so
-- its answer is exact however many are left for the next beacon or cleanup.
local STATE_PREFIX = string.sub(LIVE, 1, -5) -- '{c:<id>}:', the live state's hash tag
local GROUPS = STATE_PREFIX .. 'groups'

local function group_of(r)
  return r.a .. '|' .. r.c .. '|' .. r.d
end

local function group_key(group)
  return STATE_PREFIX .. 'group:' .. group
end

-- Derived counters only ever move through here, so a field at zero disappears.
local function bump(key, field, delta)
  if redis.call('HINCRBY', key, field, delta) <= 0 then
    redis.call('HDEL', key, field)
  end
end

-- Live context (README, "Live context"): each live person counts once in each dimension, under
-- the value of their latest page view, in the sorted set CONTEXT_KEYS[i] (value -> live people),
-- derived from the hash tag like the groups. The values a person is counted under are on their
-- record's context line, so whatever removes the person takes back exactly what they added.
-- CONTEXT_OTHER counts the people whose value found a dimension full (the cap on distinct values).
local CONTEXT_DIMENSIONS = {'pages', 'referrers', 'devices', 'countries'}
local CONTEXT_DEFAULTS = {'(unknown)', '(direct)', 'other', 'unknown'}
local CONTEXT_OTHER = '(other)'
local CONTEXT_KEYS = {}
for i, dimension in ipairs(CONTEXT_DIMENSIONS) do
  CONTEXT_KEYS[i] = STATE_PREFIX .. 'ctx:' .. dimension
end

-- A person's record: joined_ms|pages|last_heard_ms|auth(0/1)|community_division|division|user_id,
-- then their context line, '=' .. page|referrer|device|country (values never hold '|' or a
-- newline; no connection key starts with '='; a record written before context has none), then one
-- line per connection key ('' for an unknown division or an anonymous person; the user id is last
-- on its line since it may hold '|'; user ids and connection keys never hold a newline).
local function decode(raw)
  local head, rest = string.match(raw, '^([^\n]*)\n?(.*)$')
  local j, p, l, a, c, d, u = string.match(head, '^(%d+)|(%d+)|(%d+)|([01])|([^|]*)|([^|]*)|(.*)$')
  local context = nil
  local line, after = string.match(rest, '^=([^\n]*)\n?(.*)$')
  if line then
    context = {string.match(line, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)$')}
    rest = after
  end
  local conns = {}
  for conn in string.gmatch(rest, '[^\n]+') do
    conns[#conns + 1] = conn
  end
  return {j = tonumber(j), p = tonumber(p), l = tonumber(l), a = a, c = c, d = d, u = u, x = context, k = conns}
end

local function encode(r)
  local head = string.format('%d|%d|%d|%s|%s|%s|%s', r.j, r.p, r.l, r.a, r.c, r.d, r.u)
  if r.x then
    head = head .. '\n=' .. table.concat(r.x, '|')
  end
  if #r.k == 0 then
    return head
  end
  return head .. '\n' .. table.concat(r.k, '\n')
end

-- Takes a person's context values back (what forget and prune do), n people at a time.
local function uncount_context(key, value, n)
  if tonumber(redis.call('ZINCRBY', key, -n, value)) <= 0 then
    redis.call('ZREM', key, value)
  end
end

-- Sets a person's context (record.lua): `wanted[i]` '' keeps the value they have (a heartbeat, a
-- referrer from the site itself), else that of `fallback` (the person a tab folds into them), else
-- the dimension's default. A value new to a dimension already holding `cap` others is counted
-- under CONTEXT_OTHER, so every dimension sums to the people live and stays bounded.
local function set_context(rec, wanted, fallback, cap)
  local context = {}
  for i, key in ipairs(CONTEXT_KEYS) do
    local had = rec.x and rec.x[i]
    local value = wanted[i]
    if value == '' then
      value = had or (fallback and fallback[i]) or CONTEXT_DEFAULTS[i]
    end
    if value ~= had then
      if had then
        uncount_context(key, had, 1)
      end
      if not redis.call('ZSCORE', key, value) then
        local held = redis.call('ZCARD', key)
        if redis.call('ZSCORE', key, CONTEXT_OTHER) then
          held = held - 1
        end
        if held >= cap then
          value = CONTEXT_OTHER
        end
      end
      redis.call('ZINCRBY', key, 1, value)
    end
    context[i] = value
  end
  rec.x = context
end

-- A connection's entry: open ('1' or '0'), person, minute of its counter ('' none), beacons then.
local function conn_entry(state)
  local open, person, minute, beats = string.match(state, '^([01])([^\n]*)\n?(%d*):?(%d*)$')
  return open, person, minute, tonumber(beats) or 0
end

local function conn_person(state)
  return string.match(state, '^.([^\n]*)')
end

local function is_cross(r)
  return r.d ~= '' and r.c ~= '' and r.d ~= r.c
end

-- Adds (delta 1) or takes back (delta -1) what a live person contributes to the counts; `change`
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

local function without(list, item)
  local kept = {}
  for _, value in ipairs(list) do
    if value ~= item then
      kept[#kept + 1] = value
    end
  end
  return kept
end

-- Removes a person and what they contribute; their connections' entries go with the person
-- only when asked (a fold keeps them: the connection lives on with another person).
local function forget(member, rec)
  rec = rec or decode(redis.call('HGET', VISITORS, member))
  contribute(rec, -1)
  for i, value in ipairs(rec.x or {}) do
    uncount_context(CONTEXT_KEYS[i], value, 1)
  end
  redis.call('HDEL', VISITORS, member)
  redis.call('ZREM', LIVE, member)
  redis.call('ZREM', group_key(group_of(rec)), member)
  redis.call('ZREM', PRESENT, member)
  return rec
end

-- A person's LIVE score, in LIVE and in their group's set.
local function set_live(member, rec, score)
  redis.call('ZADD', LIVE, score, member)
  redis.call('ZADD', group_key(group_of(rec)), score, member)
end

-- A person's LIVE and PRESENT scores from their connections (see above), or nil when none is
-- left. `window_ms - presence_ms` turns a left connection's LIVE score into its PRESENT one.
local function person_scores(rec, window_minus_presence)
  local live, present = nil, nil
  for _, conn in ipairs(rec.k) do
    local score = tonumber(redis.call('ZSCORE', CONNS, conn))
    local state = redis.call('HGET', CONN_PEOPLE, conn)
    if score and state then
      local shown = string.sub(state, 1, 1) == '1' and score or score + window_minus_presence
      live = live and math.max(live, score) or score
      present = present and math.max(present, shown) or shown
    end
  end
  return live, present
end

-- Drops every connection and every person whose LIVE score is at or before `cutoff` (ms), with
-- their contributions: what beacons and cleanup do first (reads prune nothing, see live_counts).
-- Batched: records are read with one HMGET per chunk and each derived counter is changed once
-- per group, so the cost is a few calls, not a few per stale person.
-- `writing`: the caller is a beacon, which checks the connections only: a person's LIVE score is
-- their connections' highest, so no stale connection means no stale person (one call, not two,
-- for nearly every beacon; cleanup looks at both). Returns how many people went.
local PRUNE_CHUNK = 1000 -- well under Lua's unpack limit

-- Adds a raw record's context values to `into` (per dimension: value -> people), one match.
local function tally_context(raw, into)
  local p, r, d, c = string.match(raw, '\n=([^|\n]*)|([^|\n]*)|([^|\n]*)|([^|\n]*)')
  if p then
    for i, value in ipairs({p, r, d, c}) do
      into[i][value] = (into[i][value] or 0) + 1
    end
  end
end

local function chunks(list)
  local out = {}
  for first = 1, #list, PRUNE_CHUNK do
    out[#out + 1] = {unpack(list, first, math.min(first + PRUNE_CHUNK - 1, #list))}
  end
  return out
end

local function prune(cutoff, writing)
  local stale_conns = redis.call('ZRANGE', CONNS, '-inf', cutoff, 'BYSCORE')
  if #stale_conns == 0 and writing then
    return 0
  end
  if #stale_conns > 0 then
    -- A stale connection leaves its person's record; people who stay live keep the rest.
    local detach = {}
    for _, chunk in ipairs(chunks(stale_conns)) do
      local owners = redis.call('HMGET', CONN_PEOPLE, unpack(chunk))
      for i, state in ipairs(owners) do
        if state then
          local person = conn_person(state)
          detach[person] = detach[person] or {}
          detach[person][chunk[i]] = true
        end
      end
      redis.call('HDEL', CONN_PEOPLE, unpack(chunk))
    end
    redis.call('ZREMRANGEBYSCORE', CONNS, '-inf', cutoff)
    -- Their owners' scores in one call per chunk: only those who stay live need a new record.
    local owners = {}
    for person in pairs(detach) do
      owners[#owners + 1] = person
    end
    for _, chunk in ipairs(chunks(owners)) do
      for i, score in ipairs(redis.call('ZMSCORE', LIVE, unpack(chunk))) do
        if score and tonumber(score) > tonumber(cutoff) then
          local person = chunk[i]
          local rec = decode(redis.call('HGET', VISITORS, person))
          local kept = {}
          for _, conn in ipairs(rec.k) do
            if not detach[person][conn] then
              kept[#kept + 1] = conn
            end
          end
          rec.k = kept
          redis.call('HSET', VISITORS, person, encode(rec))
        end
      end
    end
  end

  local stale = redis.call('ZRANGE', LIVE, '-inf', cutoff, 'BYSCORE')
  local n = #stale
  if n == 0 then
    return 0
  end
  -- Stale people are grouped by what they count towards (auth|community division|division):
  -- one cheap match per record; then the groups' contributions are summed per counter, and each
  -- counter changes once.
  local groups = {}
  -- Per dimension: value -> stale people counted under it; when everyone goes (what cleanup
  -- mostly finds), the context keys go whole instead.
  local everyone = redis.call('ZCARD', LIVE) == n
  local context = {{}, {}, {}, {}}
  for _, chunk in ipairs(chunks(stale)) do
    for _, raw in ipairs(redis.call('HMGET', VISITORS, unpack(chunk))) do
      if raw then
        local group = string.match(raw, '^%d+|%d+|%d+|([01]|[^|]*|[^|]*)|')
        groups[group] = (groups[group] or 0) + 1
        if not everyone then
          tally_context(raw, context)
        end
      end
    end
    redis.call('HDEL', VISITORS, unpack(chunk))
    redis.call('ZREM', PRESENT, unpack(chunk))
  end
  local deltas = {[COUNTS] = {}, [DIVISIONS] = {}, [PAIRS] = {}}
  local function collect(key, field, delta)
    deltas[key][field] = (deltas[key][field] or 0) + delta
  end
  for group, count in pairs(groups) do
    local a, c, d = string.match(group, '^([01])|([^|]*)|([^|]*)$')
    contribute({a = a, c = c, d = d}, -count, collect)
    redis.call('ZREMRANGEBYSCORE', group_key(group), '-inf', cutoff)
  end
  for key, fields in pairs(deltas) do
    for field, delta in pairs(fields) do
      bump(key, field, delta)
    end
  end
  for i, values in ipairs(context) do
    for value, count in pairs(values) do
      uncount_context(CONTEXT_KEYS[i], value, count)
    end
  end
  redis.call('ZREMRANGEBYSCORE', LIVE, '-inf', cutoff)
  if everyone then
    redis.call('DEL', GROUPS, unpack(CONTEXT_KEYS))
  end
  return n
end

-- What the live people count, for a read (which prunes nothing: that is the beacons' and
-- cleanup's): total, {auth, anon, cross}, divisions and pairs as field/value lists, and the open
-- connections. With stale people not pruned yet, the counters less what each group's stale
-- members still add to them (a ZCOUNT per group, however many they are).
local function live_counts(cutoff)
  local counts = redis.call('HMGET', COUNTS, 'auth', 'anon', 'cross')
  local divisions = redis.call('HGETALL', DIVISIONS)
  local pairs_ = redis.call('HGETALL', PAIRS)
  local connections = redis.call('ZCOUNT', CONNS, '(' .. cutoff, '+inf')
  if #redis.call('ZRANGE', LIVE, '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, 1) == 0 then
    return redis.call('ZCARD', LIVE), counts, divisions, pairs_, connections
  end
  local deltas = {[COUNTS] = {}, [DIVISIONS] = {}, [PAIRS] = {}}
  local function collect(key, field, delta)
    deltas[key][field] = (deltas[key][field] or 0) + delta
  end
  for _, group in ipairs(redis.call('SMEMBERS', GROUPS)) do
    local stale = redis.call('ZCOUNT', group_key(group), '-inf', cutoff)
    if stale > 0 then
      local a, c, d = string.match(group, '^([01])|([^|]*)|([^|]*)$')
      contribute({a = a, c = c, d = d}, -stale, collect)
    end
  end
  local function corrected(flat, changes)
    local out = {}
    for i = 1, #flat, 2 do
      local value = tonumber(flat[i + 1]) + (changes[flat[i]] or 0)
      if value > 0 then
        out[#out + 1] = flat[i]
        out[#out + 1] = value
      end
    end
    return out
  end
  for i, field in ipairs({'auth', 'anon', 'cross'}) do
    local value = tonumber(counts[i] or '0') + (deltas[COUNTS][field] or 0)
    counts[i] = value > 0 and value or false
  end
  local total = redis.call('ZCOUNT', LIVE, '(' .. cutoff, '+inf')
  return total, counts, corrected(divisions, deltas[DIVISIONS]), corrected(pairs_, deltas[PAIRS]), connections
end

-- The live context, for a read (which prunes nothing): per dimension, value, people, value, ...
-- (at most the cap's values and CONTEXT_OTHER). The stale people not pruned yet are taken back by
-- their records, the CONTEXT_STALE_BATCH least recently live of them: beyond that many (a large
-- community that fell silent since the last beacon and cleanup), the rest still count under their
-- values until the next beacon or cleanup prunes them, within a minute.
local CONTEXT_STALE_BATCH = 1000

local function live_context(cutoff)
  local stale = {{}, {}, {}, {}}
  local people = redis.call('ZRANGE', LIVE, '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, CONTEXT_STALE_BATCH)
  if #people > 0 then
    for _, raw in ipairs(redis.call('HMGET', VISITORS, unpack(people))) do
      if raw then
        tally_context(raw, stale)
      end
    end
  end
  local out = {}
  for i, key in ipairs(CONTEXT_KEYS) do
    local flat = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    local kept = {}
    for j = 1, #flat, 2 do
      local value = tonumber(flat[j + 1]) - (stale[i][flat[j]] or 0)
      if value > 0 then
        kept[#kept + 1] = flat[j]
        kept[#kept + 1] = value
      end
    end
    out[i] = kept
  end
  return out
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

-- A beacon heard a person on one of their connections at `now`: their record, the connection's
-- entry (open, whose, and its beacons this minute while the per-connection limit is on; written
-- only when it changed from `state`), its score, the person's LIVE and PRESENT scores. Answers the
-- live count. record.lua and heartbeat.lua end every counted beacon with it.
local function hear(member, rec, connection, state, now, rate_limited, minute, beats)
  redis.call('HSET', VISITORS, member, encode(rec))
  local entry = '1' .. member
  if rate_limited then
    entry = entry .. '\n' .. minute .. ':' .. beats
  end
  if entry ~= state then
    redis.call('HSET', CONN_PEOPLE, connection, entry)
  end
  redis.call('ZADD', CONNS, now, connection)
  set_live(member, rec, now)
  redis.call('ZADD', PRESENT, now, member)
  return redis.call('ZCARD', LIVE)
end

-- The answer of a counted beacon, {1, count, needs index, now}: the user's set of communities
-- (when the beacon names one) is refreshed, and so, now and then, is the community's registration
-- in cleanup's index, so one lost between the script and the caller's ZADD (a timeout, a crash)
-- heals by itself.
local function counted_answer(count, now, user_communities, community_id, user_set_ttl_ms, index_refresh_ms)
  if user_communities then
    redis.call('ZADD', user_communities, now, community_id)
    redis.call('PEXPIRE', user_communities, user_set_ttl_ms)
  end
  local indexed = tonumber(redis.call('HGET', COUNTS, 'indexed') or '0')
  if now - indexed < index_refresh_ms then
    return {1, count, 0, now}
  end
  redis.call('HSET', COUNTS, 'indexed', now)
  return {1, count, 1, now}
end
