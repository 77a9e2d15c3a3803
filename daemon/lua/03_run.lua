-- hopper_run(prefix, id, node, now, worker_pid, attempt, ttl, max_events, max_attempts): the job went to
-- a worker.
-- Returns 0 if the job had already ended (nothing written), else 1.
OPS.run = function(a)
  local p, id, node, now, pid, attempt = a[1], a[2], a[3], a[4], a[5], tonumber(a[6])
  local ttl, max_events = tonumber(a[7]), tonumber(a[8])
  local h = p .. 'job:' .. id
  local st = redis.call('HGET', h, 'state')
  if st and TERMINAL[st] then return 0 end
  redis.call('HSET', h, 'state', 'running', 'started_at', now, 'updated_at', now, 'node', node,
             'worker_pid', pid, 'attempt', attempt, 'max_attempts', a[9], 'progress', 0, 'stage', '', 'message', '')
  emit(p, id, {job = id, event = 'state', state = 'running', attempt = attempt, progress = 0, at = tonumber(now)},
       max_events, ttl, false)
  return 1
end
