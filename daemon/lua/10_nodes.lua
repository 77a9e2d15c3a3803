-- hopper_heartbeat(prefix, node, pid, host, started_at, running, version, lease_ms, now, check, queue...)
-- Renews this node's heartbeat. With check = '1' (start-up) and a live heartbeat under the same node id
-- from another process, writes nothing and returns {'held', pid, host}; otherwise returns {'ok'}.
OPS.heartbeat = function(a)
  local p, node, pid, host = a[1], a[2], a[3], a[4]
  local k = p .. 'node:' .. node
  if a[10] == '1' and redis.call('EXISTS', k) == 1 then
    local old = redis.call('HMGET', k, 'pid', 'host')
    if old[1] ~= pid or old[2] ~= host then return {'held', old[1] or '', old[2] or ''} end
  end
  local queues = {}
  for i = 11, #a do
    queues[#queues + 1] = a[i]
    redis.call('SADD', k .. ':queues', a[i])
  end
  redis.call('HSET', k, 'node', node, 'pid', pid, 'host', host, 'started_at', a[5], 'running', a[6],
             'version', a[7], 'queues', table.concat(queues, ','), 'updated_at', a[9])
  redis.call('PEXPIRE', k, a[8])
  redis.call('SADD', p .. 'nodes', node)
  return {'ok'}
end

-- hopper_reap(prefix, self, recover_self): returns to their queues the jobs of every node whose heartbeat
-- expired, and, with recover_self = '1' (start-up), this node's own leftovers from a previous life.
-- Returns {jobs_moved, node, node, ...} naming the nodes reaped.
OPS.reap = function(a)
  local p, self = a[1], a[2]
  local out = {0}
  if a[3] == '1' then out[1] = return_inflight(p, self) end
  for _, n in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do
    if n ~= self and redis.call('EXISTS', p .. 'node:' .. n) == 0 then
      out[1] = out[1] + return_inflight(p, n)
      redis.call('SREM', p .. 'nodes', n)
      redis.call('DEL', p .. 'node:' .. n .. ':queues')
      out[#out + 1] = n
    end
  end
  return out
end
