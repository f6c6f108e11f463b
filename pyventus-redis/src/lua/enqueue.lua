-- Adds an entry unless the group's backlog (entries no worker has taken) has
-- reached the cap. KEYS[1]: the stream. ARGV: group, cap, 'reject' or 'drop',
-- then the entry's field names and values.
-- Returns {id or false, backlog, dropped, created}: with 'drop', a full queue
-- skips its oldest waiting entries (moves the group past them) to make room,
-- and counts them; created is 1 if the consumer group was missing.
local stream, group, cap, overflow = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local info = group_info(stream, group)
local created = 0
if not info then
  created = 1
  -- Gone with the server's data, or never created: entries enqueued from now
  -- on wait for a worker either way.
  redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  info = group_info(stream, group)
end
local backlog = info['lag']
if not backlog then
  -- Redis cannot tell (entries deleted past the group's position): count
  -- every entry not pending, an overestimate.
  backlog = redis.call('XLEN', stream) - redis.call('XPENDING', stream, group)[1]
end
local dropped = 0
if backlog >= cap then
  if overflow ~= 'drop' then
    return {false, backlog, 0, created}
  end
  local oldest = redis.call('XRANGE', stream, '(' .. info['last-delivered-id'], '+', 'COUNT', backlog - cap + 1)
  if #oldest > 0 then
    local skip_to = oldest[#oldest][1]
    -- The group's read counter must stay known, or Redis cannot tell its lag
    -- next time (it forgets it for a position inside the stream).
    local read = info['entries-read']
    if not read then
      local stream_info = redis.call('XINFO', 'STREAM', stream)
      for i = 1, #stream_info, 2 do
        if stream_info[i] == 'entries-added' then
          read = stream_info[i + 1] - backlog
        end
      end
    end
    redis.call('XGROUP', 'SETID', stream, group, skip_to, 'ENTRIESREAD', read + #oldest)
    dropped = #oldest
    backlog = backlog - dropped
    trim_handled(stream, group)
  end
end
local add = {'XADD', stream, '*'}
for i = 4, #ARGV do
  add[#add + 1] = ARGV[i]
end
return {redis.call(unpack(add)), backlog + 1, dropped, created}
