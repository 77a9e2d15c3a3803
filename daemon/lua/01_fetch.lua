-- hopper_fetch(prefix, node, max, queue...): moves up to max jobs from the queues, in the order given,
-- into this node's inflight lists. Returns {queue, job, queue, job, ...}. One round trip for a batch.
OPS.fetch = function(a)
  local p, node, n = a[1], a[2], tonumber(a[3])
  local out = {}
  for i = 4, #a do
    local q = a[i]
    local src, dst = p .. 'queue:' .. q, p .. 'inflight:' .. node .. ':' .. q
    while n > 0 do
      local v = redis.call('LMOVE', src, dst, 'RIGHT', 'LEFT')
      if not v then break end
      out[#out + 1] = q
      out[#out + 1] = v
      n = n - 1
    end
    if n <= 0 then break end
  end
  return out
end
