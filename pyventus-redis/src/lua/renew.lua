-- Renews the leases `consumer` still holds among the ids: resets their idle
-- time so that no one claims them as abandoned. Never takes an entry back from
-- another consumer. KEYS[1]: the stream. ARGV: group, consumer, ids.
-- Returns the ids whose lease is lost (claimed by another, or no longer
-- pending).
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local mine, lost = owned_by(stream, group, consumer, 3, #ARGV)
if #mine > 0 then
  local claim = {'XCLAIM', stream, group, consumer, '0'}
  for _, id in ipairs(mine) do
    claim[#claim + 1] = id
  end
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
return lost
