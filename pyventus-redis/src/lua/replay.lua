-- Puts a dead letter's entry back on the queue, if the letter is still there:
-- taking the letter and enqueueing its entry are one step, so two replays of
-- one letter enqueue it once. KEYS[1]: the dead letters, KEYS[2]: the stream.
-- ARGV: the letter's id, then the entry's field names and values.
-- Returns the new entry's id, or false if the letter was gone.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return false
end
local add = {'XADD', KEYS[2], '*'}
for i = 2, #ARGV do
  add[#add + 1] = ARGV[i]
end
return redis.call(unpack(add))
