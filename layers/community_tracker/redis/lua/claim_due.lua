-- Claims up to `limit` communities of one index shard that are due (score <= now_ms) by moving
-- their next due time to `due_ms`, so two cleanup passes at once take different communities and
-- an interrupted pass leaves them due again after `due_ms`. Contract: scripts.ClaimDueKeys / Args.
local INDEX = KEYS[1]
local now_ms = ARGV[1]
local limit = tonumber(ARGV[2])
local due_ms = ARGV[3]
local due = redis.call('ZRANGE', INDEX, '-inf', now_ms, 'BYSCORE', 'LIMIT', 0, limit)
for _, community in ipairs(due) do
  redis.call('ZADD', INDEX, due_ms, community)
end
return due
