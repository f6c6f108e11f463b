-- Trims the entries the group is done with. KEYS[1]: the stream. ARGV: group.
return trim_handled(KEYS[1], ARGV[1])
