-- One page of live visitors, most recent activity first. Contract: scripts.ListVisitorsArgs.
local cutoff_ms = ARGV[1]
local offset = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
-- Returns {live count, {member, score, ...}, {record, ...}}. Nothing is pruned here (that is the
-- beacons' and cleanup's): the page and the count leave out the stale by their scores.
local live_after = '(' .. cutoff_ms
local page = redis.call('ZRANGE', LIVE, '+inf', live_after, 'BYSCORE', 'REV', 'LIMIT', offset, limit, 'WITHSCORES')
local members = {}
for i = 1, #page, 2 do
  members[#members + 1] = page[i]
end
local records = {}
if #members > 0 then
  records = redis.call('HMGET', VISITORS, unpack(members))
end
return {redis.call('ZCOUNT', LIVE, live_after, '+inf'), page, records}
