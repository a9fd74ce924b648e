-- Removes one visitor (sent on pagehide). KEYS[6] (single node only) the user's set of
-- communities. ARGV: 1 cutoff_ms, 2 member, 3 community id (with KEYS[6]).
-- Returns {removed (0/1), live count}.
prune(ARGV[1])
local removed = forget(ARGV[2])
if KEYS[6] then
  redis.call('ZREM', KEYS[6], ARGV[3])
end
return {removed, redis.call('ZCARD', LIVE)}
