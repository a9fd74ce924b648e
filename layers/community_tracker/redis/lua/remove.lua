-- Removes one visitor (sent on pagehide). Contract: scripts.RemoveKeys / scripts.RemoveArgs.
local USER_COMMUNITIES = KEYS[6]
local cutoff_ms = ARGV[1]
local member = ARGV[2]
local community_id = ARGV[3]
-- Returns {removed (0/1), live count}.
prune(cutoff_ms)
local removed = forget(member)
if USER_COMMUNITIES then
  redis.call('ZREM', USER_COMMUNITIES, community_id)
end
return {removed, redis.call('ZCARD', LIVE)}
