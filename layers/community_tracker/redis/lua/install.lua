-- Installs a community's registration (its version, division and calendar) for the scripts that
-- check it (calendar.lua), moving every live person to the community's division in the same step
-- (a division move re-attributes them at once). When Redis held no registration (it restarted,
-- or failed over to an empty node), the open figures of the community's last checkpoint are
-- merged back: peaks by the higher, unique-visitor sketches by their union.
-- Contract: scripts.InstallKeys / scripts.InstallArgs; after them, per checkpoint bucket, KEYS
-- peak and unique visitors, ARGV period, "key|start|end", count, at, sketch (raw HLL or '').
local META = KEYS[9]
local RESTORE = KEYS[10]
local version = tonumber(ARGV[1])
local division = ARGV[2]
local calendar = ARGV[3]
local cutoff_ms = ARGV[4]
local bucket_margin_ms = tonumber(ARGV[5])
local force = ARGV[6]
local FIRST_BUCKET_KEY = 11
local checkpointed = {unpack(ARGV, 7)}
-- Returns {installed (0/1), the version Redis held before (or false), people moved, buckets
-- restored}: a registration never replaces a newer one (or itself), unless forced ('1': the
-- directory, read just now, holds an older one than Redis: it was reset).
prune(cutoff_ms)
local held = redis.call('HGET', META, 'version')
if held and tonumber(held) >= version and force ~= '1' then
  return {0, tonumber(held), 0, 0}
end
-- Like prune: each derived counter changes once, whatever the number of people moved.
local deltas = {[COUNTS] = {}, [DIVISIONS] = {}, [PAIRS] = {}}
local function collect(key, field, delta)
  deltas[key][field] = (deltas[key][field] or 0) + delta
end
local moved = 0
local records = redis.call('HGETALL', VISITORS)
for i = 1, #records, 2 do
  local rec = decode(records[i + 1])
  if rec.c ~= division then
    local person = records[i]
    local left = group_key(group_of(rec))
    local score = redis.call('ZSCORE', left, person)
    redis.call('ZREM', left, person)
    contribute(rec, -1, collect)
    rec.c = division
    contribute(rec, 1, collect)
    redis.call('HSET', VISITORS, person, encode(rec))
    -- The person's group (what a read discounts them by while stale) moves with them.
    if score then
      redis.call('ZADD', group_key(group_of(rec)), score, person)
      redis.call('SADD', GROUPS, group_of(rec))
    end
    moved = moved + 1
  end
end
for key, fields in pairs(deltas) do
  for field, delta in pairs(fields) do
    if delta ~= 0 then
      bump(key, field, delta)
    end
  end
end
local restored = 0
if not held then
  for i = 1, #checkpointed, 5 do
    local n = (i - 1) / 5
    local peak, unique = KEYS[FIRST_BUCKET_KEY + 2 * n], KEYS[FIRST_BUCKET_KEY + 2 * n + 1]
    local period, descriptor, count, at, sketch = unpack(checkpointed, i, i + 4)
    local wanted = parse_bucket(descriptor)
    local expire = wanted.end_ms + bucket_margin_ms
    if tonumber(count) > tonumber(redis.call('HGET', peak, 'count') or '0') then
      redis.call('HSET', peak, 'count', count, 'at', at)
      expire_at_ms(peak, expire)
    end
    if sketch ~= '' then
      redis.call('SET', RESTORE, sketch)
      local merged = redis.pcall('PFMERGE', unique, RESTORE)
      redis.call('DEL', RESTORE)
      if type(merged) ~= 'table' or not merged.err then
        expire_at_ms(unique, expire)
      end
    end
    if not redis.call('HGET', META, period) then
      redis.call('HSET', META, period, descriptor)
    end
    restored = restored + 1
  end
end
redis.call('HSET', META, 'version', version, 'division', division, 'calendar', calendar)
return {1, held and tonumber(held) or false, moved, restored}
