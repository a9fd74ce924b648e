-- One page of live visitors, most recent activity first. ARGV: 1 cutoff_ms, 2 offset, 3 limit.
-- Returns {live count, {member, score, ...}, {record, ...}}.
prune(ARGV[1])
local offset = tonumber(ARGV[2])
local page = redis.call('ZRANGE', LIVE, offset, offset + tonumber(ARGV[3]) - 1, 'REV', 'WITHSCORES')
local members = {}
for i = 1, #page, 2 do
  members[#members + 1] = page[i]
end
local records = {}
if #members > 0 then
  records = redis.call('HMGET', VISITORS, unpack(members))
end
return {redis.call('ZCARD', LIVE), page, records}
