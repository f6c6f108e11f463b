-- Leaves entries `consumer` holds pending, claimable by any worker once they
-- have been idle for the visibility timeout: sets their idle time. A retry
-- after a backoff sets it to the timeout minus the backoff; an entry abandoned
-- at shutdown, to the timeout (claimable at once). KEYS[1]: the stream. ARGV:
-- group, consumer, idle ms, ids. Returns how many it released.
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local mine = owned_by(stream, group, consumer, 4, #ARGV)
if #mine > 0 then
  local claim = {'XCLAIM', stream, group, consumer, '0'}
  for _, id in ipairs(mine) do
    claim[#claim + 1] = id
  end
  claim[#claim + 1] = 'IDLE'
  claim[#claim + 1] = ARGV[3]
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
return #mine
