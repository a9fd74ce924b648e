-- Installs a community's registration (its version, division and calendar) for the scripts that
-- check it (calendar.lua), moving every live person to the community's division in the same step
-- (a division move re-attributes them at once). Contract: scripts.InstallKeys / scripts.InstallArgs.
local META = KEYS[9]
local version = tonumber(ARGV[1])
local division = ARGV[2]
local calendar = ARGV[3]
local cutoff_ms = ARGV[4]
-- Returns {installed (0/1), the version Redis held before (or false), people moved}: a
-- registration never replaces a newer one (or itself).
prune(cutoff_ms)
local held = redis.call('HGET', META, 'version')
if held and tonumber(held) >= version then
  return {0, tonumber(held), 0}
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
    contribute(rec, -1, collect)
    rec.c = division
    contribute(rec, 1, collect)
    redis.call('HSET', VISITORS, records[i], encode(rec))
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
redis.call('HSET', META, 'version', version, 'division', division, 'calendar', calendar)
return {1, held and tonumber(held) or false, moved}
