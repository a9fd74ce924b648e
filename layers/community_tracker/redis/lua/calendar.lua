-- Shared prelude of the scripts that keep calendar figures (after community.lua; redis/scripts.py
-- prepends both). README, "Calendar buckets".
--
-- A community's META hash holds its registration as the functions last installed it (version,
-- division, calendar: its zones over time, as timeutil.Calendar.to_json writes them) and, per
-- period, the bucket open now as "key|start_ms|end_ms" (key: "2031-03-05@America/Toronto", the
-- suffix of its Redis keys). The caller computes the buckets of its instant from the calendar of
-- the version it names; the script checks that version, then opens those buckets, closes the
-- ones they follow (into CLOSED, "period|key|start|end" scored by end, until cleanup has written
-- them to DynamoDB), or recognises a late beacon of a bucket already closed.

local CALENDAR_PERIODS = {'day', 'week', 'month'}
local CARRY_CHUNK = 1000 -- members per PFADD when a bucket opens, well under Lua's unpack limit

local function parse_bucket(descriptor, into)
  local key, start_ms, end_ms = string.match(descriptor, '^(.*)|(%-?%d+)|(%-?%d+)$')
  into = into or {}
  into.key, into.start_ms, into.end_ms, into.descriptor = key, tonumber(start_ms), tonumber(end_ms), descriptor
  return into
end

local function expire_at_ms(key, ms)
  redis.call('EXPIREAT', key, math.floor(ms / 1000))
end

-- The end (ms) of a planned bucket, read from its descriptor when first asked (a beacon in the
-- open bucket, the usual case, never needs it unless a figure rose).
local function bucket_end(wanted)
  if not wanted.end_ms then
    parse_bucket(wanted.descriptor, wanted)
  end
  return wanted.end_ms
end

-- Plans each period's bucket: 'open' (the open one), 'roll' (it follows the open one, or there is
-- none: it opens now), 'late' (it closed already: a late beacon) or 'stale' (it overlaps the open
-- one: the caller's calendar is not the community's). `version` '' is a caller that knows none
-- (tools, tests): it may go on only while no registration was installed. Returns the plan, or
-- nil and the installed version, calendar and division for a caller that must refresh.
local function plan_calendar(meta, version, descriptors)
  local known = redis.call('HMGET', meta, 'version', 'day', 'week', 'month')
  local function refresh()
    return nil, {known[1] or false, unpack(redis.call('HMGET', meta, 'calendar', 'division'))}
  end
  if (known[1] or '') ~= version then
    return refresh()
  end
  local plan = {}
  for i, period in ipairs(CALENDAR_PERIODS) do
    local open = known[1 + i]
    local wanted = {period = period, descriptor = descriptors[i]}
    if open == wanted.descriptor then
      wanted.state = 'open'
    else
      parse_bucket(wanted.descriptor, wanted)
      if not open then
        wanted.state = 'roll'
      else
        local current = parse_bucket(open)
        if wanted.end_ms <= current.start_ms then
          wanted.state = 'late'
        elseif wanted.start_ms >= current.end_ms then
          wanted.state = 'roll'
          wanted.closes = current
        else
          return refresh()
        end
      end
    end
    plan[i] = wanted
  end
  return plan
end

-- Adds a closed bucket to CLOSED, which lives as long as the keys of its last bucket.
local function queue_closed(closed, period, bucket, margin_ms)
  redis.call('ZADD', closed, bucket.end_ms, period .. '|' .. bucket.descriptor)
  local at = math.floor((bucket.end_ms + margin_ms) / 1000)
  redis.call('EXPIREAT', closed, at, 'NX')
  redis.call('EXPIREAT', closed, at, 'GT')
end

-- Opens the planned buckets that follow the open ones: before anything is pruned, everyone live at
-- a bucket's start (LIVE scores above start - window) is one of its unique visitors, and their
-- number its first peak. Returns true when a figure of an open bucket changed.
local function open_buckets(plan, keys, meta, closed, window_ms, margin_ms)
  local changed = false
  local live_at = {}
  for i, wanted in ipairs(plan) do
    if wanted.state == 'roll' then
      if wanted.closes then
        queue_closed(closed, wanted.period, wanted.closes, margin_ms)
      end
      redis.call('HSET', meta, wanted.period, wanted.descriptor)
      local live = live_at[wanted.start_ms]
      if not live then
        live = redis.call('ZRANGE', LIVE, '(' .. (wanted.start_ms - window_ms), '+inf', 'BYSCORE')
        live_at[wanted.start_ms] = live
      end
      if #live > 0 then
        local peak, unique = keys[i].peak, keys[i].unique
        for first = 1, #live, CARRY_CHUNK do
          redis.call('PFADD', unique, unpack(live, first, math.min(first + CARRY_CHUNK - 1, #live)))
        end
        expire_at_ms(unique, wanted.end_ms + margin_ms)
        -- `opened`: who this part held at the start, which the parts of a split community sum.
        redis.call('HSET', peak, 'opened', #live)
        if #live > tonumber(redis.call('HGET', peak, 'count') or '0') then
          redis.call('HSET', peak, 'count', #live, 'at', wanted.start_ms)
        end
        expire_at_ms(peak, wanted.end_ms + margin_ms)
        changed = true
      end
      wanted.state = 'open'
    end
  end
  if changed then
    redis.call('HSET', meta, 'dirty', 1)
  end
  return changed
end

-- A figure of a planned bucket went up: an open bucket waits for its next checkpoint, a closed one
-- for cleanup to write it to DynamoDB again (a rollup never lowers a stored peak).
local function calendar_changed(wanted, meta, closed, margin_ms)
  if wanted.state == 'late' then
    queue_closed(closed, wanted.period, wanted, margin_ms)
  else
    redis.call('HSET', meta, 'dirty', 1)
  end
end

-- A split community keeps its calendar figures in part 0 (README, "One community in N parts"): a
-- read or cleanup that has read the other parts folds theirs in. Each peak rises to the people live
-- in all parts now (`total`) and to the sum of the parts' counts at the bucket's start (`opened`,
-- the others' sum per period: this part's own is added here); each unique-visitor sketch becomes
-- the union of its own and the others' (`sketches[i]`, raw as GET returns them, '' none), merged
-- through `scratch`, which is deleted again. Figures only ever rise, so folding twice changes nothing.
local function fold_parts(plan, keys, meta, closed, margin_ms, now_ms, total, opened, sketches, scratch)
  for i, wanted in ipairs(plan) do
    local peak, unique = keys[i].peak, keys[i].unique
    local changed = false
    local best, at = total, now_ms
    local at_start = opened[i] + tonumber(redis.call('HGET', peak, 'opened') or '0')
    if at_start > best then
      if not wanted.start_ms then
        parse_bucket(wanted.descriptor, wanted)
      end
      best, at = at_start, wanted.start_ms
    end
    if best > tonumber(redis.call('HGET', peak, 'count') or '0') then
      redis.call('HSET', peak, 'count', best, 'at', at)
      expire_at_ms(peak, bucket_end(wanted) + margin_ms)
      changed = true
    end
    local before = redis.call('PFCOUNT', unique)
    for _, sketch in ipairs(sketches[i]) do
      if sketch ~= '' then
        redis.call('SET', scratch, sketch)
        redis.pcall('PFMERGE', unique, scratch)
        redis.call('DEL', scratch)
      end
    end
    if redis.call('PFCOUNT', unique) > before then
      expire_at_ms(unique, bucket_end(wanted) + margin_ms)
      changed = true
    end
    if changed then
      calendar_changed(wanted, meta, closed, margin_ms)
    end
  end
end
