-- Installs a community's registration (its version, division and calendar) for the scripts that
-- check it (calendar.lua). Contract: scripts.InstallKeys / scripts.InstallArgs.
local META = KEYS[9]
local version = tonumber(ARGV[1])
local division = ARGV[2]
local calendar = ARGV[3]
local cutoff_ms = ARGV[4]
-- Returns {installed (0/1), the version Redis held before (or false)}: a registration never
-- replaces a newer one (or itself).
prune(cutoff_ms)
local held = redis.call('HGET', META, 'version')
if held and tonumber(held) >= version then
  return {0, tonumber(held)}
end
redis.call('HSET', META, 'version', version, 'division', division, 'calendar', calendar)
return {1, held and tonumber(held) or false}
