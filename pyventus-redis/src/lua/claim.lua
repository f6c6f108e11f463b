-- Claims entries idle past the visibility timeout, with how many times each has
-- been delivered (this time included). KEYS[1]: the stream. ARGV: group,
-- consumer, min idle ms, cursor, count.
-- Returns {next cursor, entries, deleted ids, delivery counts}.
local stream, group = KEYS[1], ARGV[1]
local claimed = redis.call('XAUTOCLAIM', stream, group, ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local counts = {}
for i, entry in ipairs(claimed[2]) do
  local pending = redis.call('XPENDING', stream, group, entry[1], entry[1], 1)
  counts[i] = pending[1] and pending[1][4] or 1
end
return {claimed[1], claimed[2], claimed[3] or {}, counts}
