-- Moves an entry `consumer` still holds to the dead letters and acknowledges
-- it, together. KEYS[1]: the stream, KEYS[2]: the dead letters. ARGV: group,
-- consumer, entry id, dead-letter cap, then the letter's field names and
-- values. Returns {moved (1 or 0), old letters trimmed by the cap}.
local stream, dead, group, consumer, id = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local pending = redis.call('XPENDING', stream, group, id, id, 1)
if not pending[1] or pending[1][2] ~= consumer then
  return {0, 0}
end
local add = {'XADD', dead, '*'}
for i = 5, #ARGV do
  add[#add + 1] = ARGV[i]
end
redis.call(unpack(add))
redis.call('XACK', stream, group, id)
return {1, redis.call('XTRIM', dead, 'MAXLEN', '~', ARGV[4])}
