-- Removes one visitor (sent on pagehide). ARGV: 1 cutoff_ms, 2 member.
-- Returns {removed (0/1), live count}.
prune(ARGV[1])
local removed = forget(ARGV[2])
return {removed, redis.call('ZCARD', LIVE)}
