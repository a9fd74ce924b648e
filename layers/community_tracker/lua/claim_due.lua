-- Claims up to ARGV[2] communities of one index shard that are due (score <= ARGV[1]) by moving
-- their next due time to ARGV[3], so two cleanup passes at once take different communities and
-- an interrupted pass leaves them due again after ARGV[3].
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
for _, community in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[3], community)
end
return due
