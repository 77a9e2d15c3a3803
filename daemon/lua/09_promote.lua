-- hopper_promote(prefix, now, limit, queue...): moves due delayed jobs and retries to the head of their
-- queues. Safe with several daemons: the move is atomic, so each due job is promoted once.
OPS.promote = function(a)
  local p, now, limit = a[1], a[2], tonumber(a[3])
  local moved = 0
  for i = 4, #a do
    local z = p .. 'scheduled:' .. a[i]
    for _, v in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, limit)) do
      redis.call('ZREM', z, v)
      redis.call('RPUSH', p .. 'queue:' .. a[i], v)
      moved = moved + 1
    end
  end
  return moved
end
