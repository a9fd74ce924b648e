-- Where the tabs of a split community live: one of its tab directories (keys.tab_directory_key),
-- tab -> when placed * 128 + its part (README, "One community in N parts"). Places tabs in one part
-- and answers where each was before; with `only_new`, only the tabs it does not hold (a page view
-- that says it is its tab's first: one it holds keeps its entry for the caller to move).
-- Contract: scripts.PlaceKeys / scripts.PlaceArgs; after them, ARGV names the tabs.
local TABS = KEYS[1]
local now_ms = tonumber(ARGV[1])
local keep_ms = tonumber(ARGV[2])
local part = tonumber(ARGV[3])
local only_new = ARGV[4]
local tabs = {unpack(ARGV, 5)}
-- Returns, per tab, the part it was placed in before, or -1.
redis.call('ZREMRANGEBYSCORE', TABS, '-inf', '(' .. ((now_ms - keep_ms) * 128))
local before = {}
for i, tab in ipairs(tabs) do
  local score = redis.call('ZSCORE', TABS, tab)
  before[i] = score and math.floor(tonumber(score)) % 128 or -1
  if not (score and only_new == '1') then
    redis.call('ZADD', TABS, now_ms * 128 + part, tab)
  end
end
redis.call('PEXPIRE', TABS, keep_ms)
return before
