-- Records one beacon for one visitor: a page view, or activity of a visitor already present.
-- KEYS[6..8] peak day/week/month, [9..11] unique visitors day/week/month (HLL),
-- [12] cross-division pair history of the day, [13] series hour, [14] drops of the day,
-- [15] dedup marker of the event id, [16] rate-limit counter of the client for this minute,
-- [17] (single node only; a cluster keeps it in another slot) the user's set of communities.
-- ARGV: 1 now_ms, 2 cutoff_ms, 3 member, 4 pages to add (0/1), 5 must already be present (0/1),
-- 6 is_authenticated (0/1), 7 community division, 8 visitor division, 9 user id,
-- 10 member to merge (anonymous entry of the same person, or ''), 11 has event id (0/1),
-- 12 dedup ttl s, 13 rate limit per minute (0 = off), 14 minute field of the series,
-- 15..17 expire-at (s) of day/week/month keys, 18 series expire-at, 19 history expire-at,
-- 20 community id and 21 ttl (ms) of the user's set of communities (with KEYS[17]).
-- Returns {status, live count, needs index, recorded at}; status 1 counted, 2 duplicate,
-- 3 rate limited, 4 not present. "Recorded at" is when the event id was first seen (now, unless a
-- duplicate), so a retried beacon maps to the same DynamoDB key.
local now, cutoff, member = tonumber(ARGV[1]), ARGV[2], ARGV[3]
prune(cutoff)

local limit = tonumber(ARGV[13])
if limit > 0 then
  local hits = redis.call('INCR', KEYS[16])
  if hits == 1 then
    redis.call('EXPIRE', KEYS[16], 120)
  end
  if hits > limit then
    if redis.call('HINCRBY', KEYS[14], 'rate_limited', 1) == 1 then
      redis.call('EXPIREAT', KEYS[14], ARGV[19])
    end
    return {3, redis.call('ZCARD', LIVE), 0, ARGV[1]}
  end
end

if ARGV[11] == '1' and not redis.call('SET', KEYS[15], ARGV[1], 'NX', 'EX', ARGV[12]) then
  if redis.call('HINCRBY', KEYS[14], 'duplicate', 1) == 1 then
    redis.call('EXPIREAT', KEYS[14], ARGV[19])
  end
  return {2, redis.call('ZCARD', LIVE), 0, redis.call('GET', KEYS[15])}
end

-- Login merge: the anonymous entry of the same browser is folded into this visitor.
local merged = nil
local merge_member = ARGV[10]
if merge_member ~= '' and merge_member ~= member then
  local raw = redis.call('HGET', VISITORS, merge_member)
  if raw then
    merged = decode(raw)
    forget(merge_member)
  end
end

local raw = redis.call('HGET', VISITORS, member)
if not raw and not merged and ARGV[5] == '1' then
  return {4, redis.call('ZCARD', LIVE), 0, ARGV[1]}
end

local rec
if raw then
  rec = decode(raw)
else
  rec = {j = now, p = 0}
end
if merged then
  rec.j = math.min(rec.j, merged.j)
  rec.p = rec.p + merged.p
end
local pages = tonumber(ARGV[4])
rec.p = rec.p + pages
-- A returning visitor usually has the same attributes: then the derived counts stay as they are.
local a, c, d = ARGV[6], ARGV[7], ARGV[8]
if not raw or rec.a ~= a or rec.c ~= c or rec.d ~= d then
  if raw then
    contribute(rec, -1)
  end
  rec.a, rec.c, rec.d = a, c, d
  contribute(rec, 1)
end
rec.u = ARGV[9]
redis.call('HSET', VISITORS, member, encode(rec))
redis.call('ZADD', LIVE, now, member)
local count = redis.call('ZCARD', LIVE)

-- A day lies inside its week and its month, so their peaks are never below the day's: only a
-- new daily peak can be a new weekly or monthly one. A bucket's keys (peak, unique visitors) are
-- created together, by its first visitor: that is when their expiry is set, once.
local new_bucket = {}
local day_peak = redis.call('HGET', KEYS[6], 'count')
if count > tonumber(day_peak or '0') then
  for i = 6, 8 do
    local peak = i == 6 and day_peak or redis.call('HGET', KEYS[i], 'count')
    if count > tonumber(peak or '0') then
      redis.call('HSET', KEYS[i], 'count', count, 'at', now)
      if not peak then
        redis.call('EXPIREAT', KEYS[i], ARGV[9 + i])
        new_bucket[i] = true
      end
    end
  end
end
for i = 9, 11 do
  -- The first counted beacon of a bucket creates its unique-visitor key with the peak, even a
  -- heartbeat (that visitor is there in the new bucket), so both get their expiry here.
  if pages > 0 or not raw or new_bucket[i - 3] then
    redis.call('PFADD', KEYS[i], member)
  end
  if new_bucket[i - 3] then
    redis.call('EXPIREAT', KEYS[i], ARGV[6 + i])
  end
end
if pages > 0 and is_cross(rec) then
  if redis.call('HINCRBY', KEYS[12], rec.d .. '>' .. rec.c, 1) == 1 then
    redis.call('EXPIREAT', KEYS[12], ARGV[19])
  end
end
sample(KEYS[13], ARGV[14], count, ARGV[18])

if KEYS[17] then
  redis.call('ZADD', KEYS[17], now, ARGV[20])
  redis.call('PEXPIRE', KEYS[17], ARGV[21])
end

local needs_index = redis.call('HSETNX', COUNTS, 'indexed', '1')
return {1, count, needs_index, ARGV[1]}
