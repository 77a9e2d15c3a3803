-- hopper_reconcile(prefix, node, nqueues, queue..., held...): after a lost connection, a fetch or BLMOVE
-- whose reply never arrived may have left jobs in this node's inflight lists that hopperd does not know
-- about. Every inflight entry that is not among the held payloads (a multiset: identical messages count
-- separately) goes back to the head of its queue, oldest nearest the head. Returns how many moved.
OPS.reconcile = function(a)
  local p, node, nq = a[1], a[2], tonumber(a[3])
  local held = {}
  for i = 4 + nq, #a do held[a[i]] = (held[a[i]] or 0) + 1 end
  local moved = 0
  for i = 4, 3 + nq do
    local infl, dst = p .. 'inflight:' .. node .. ':' .. a[i], p .. 'queue:' .. a[i]
    local items = redis.call('LRANGE', infl, '0', '-1')
    for k = 1, #items do
      local v = items[k]
      if (held[v] or 0) > 0 then
        held[v] = held[v] - 1
      else
        redis.call('LREM', infl, '-1', v)
        redis.call('RPUSH', dst, v)
        moved = moved + 1
      end
    end
  end
  return moved
end
