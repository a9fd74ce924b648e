-- One connection leaves (pagehide): it stays for its grace, so the next page of the same visit
-- (which cancels the leave) never makes its person dip. Contract: scripts.RemoveArgs.
local now_ms = tonumber(ARGV[1])
local cutoff_ms = ARGV[2]
local connection = ARGV[3]
local grace_ms = tonumber(ARGV[4])
local window_ms = tonumber(ARGV[5])
local presence_ms = tonumber(ARGV[6])
-- Returns {left (0/1), live count}.
prune(cutoff_ms, true)
local state = redis.call('HGET', CONN_PEOPLE, connection)
if not state or string.sub(state, 1, 1) ~= '1' then
  return {0, redis.call('ZCARD', LIVE)}
end
local person = conn_person(state)
-- Its rate counter stays with it, so leaving and coming back does not reset it.
redis.call('HSET', CONN_PEOPLE, connection, '0' .. string.sub(state, 2))
redis.call('ZADD', CONNS, now_ms + grace_ms - window_ms, connection)
local raw = redis.call('HGET', VISITORS, person)
if not raw then
  return {1, redis.call('ZCARD', LIVE)}
end
local rec = decode(raw)
local live_score, present_score = person_scores(rec, window_ms - presence_ms)
set_live(person, rec, live_score)
redis.call('ZADD', PRESENT, present_score, person)
return {1, redis.call('ZCARD', LIVE)}
