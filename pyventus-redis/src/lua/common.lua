-- Helpers shared by the scripts below (prepended to each that needs them).

-- The consumer group's XINFO fields by name, or nil if the stream or the group
-- does not exist.
local function group_info(stream, group)
  if redis.call('EXISTS', stream) == 0 then
    return nil
  end
  for _, fields in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = {}
    for i = 1, #fields, 2 do
      info[fields[i]] = fields[i + 1]
    end
    if info['name'] == group then
      return info
    end
  end
  return nil
end

-- Whether entry id a comes before entry id b ("<ms>-<seq>").
local function id_before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  a_ms, a_seq, b_ms, b_seq = tonumber(a_ms), tonumber(a_seq), tonumber(b_ms), tonumber(b_seq)
  return a_ms < b_ms or (a_ms == b_ms and a_seq < b_seq)
end

-- Trims the entries the group is done with: delivered, and acknowledged (older
-- than its oldest pending entry). Never an entry waiting for a worker or held
-- by one. Approximate (whole nodes), so cheap. Returns how many went.
local function trim_handled(stream, group)
  local info = group_info(stream, group)
  if not info then
    return 0
  end
  local keep_from = info['last-delivered-id']
  local pending = redis.call('XPENDING', stream, group)
  if pending[1] > 0 and id_before(pending[2], keep_from) then
    keep_from = pending[2]
  end
  return redis.call('XTRIM', stream, 'MINID', '~', keep_from)
end

-- The entries of ids in the pending list that `consumer` holds, and the others.
local function owned_by(stream, group, consumer, first, last_arg)
  local mine, lost = {}, {}
  for i = first, last_arg do
    local id = ARGV[i]
    local pending = redis.call('XPENDING', stream, group, id, id, 1)
    if pending[1] and pending[1][2] == consumer then
      mine[#mine + 1] = id
    else
      lost[#lost + 1] = id
    end
  end
  return mine, lost
end
