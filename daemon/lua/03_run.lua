-- hopper_run(prefix, id, node, now, worker_pid, attempt, ttl, max_events, max_attempts): the job went to
-- a worker.
-- Returns 0 if the job had already ended (nothing written), else 1.
OPS.run = function(a)
  local p, id, node, now, pid, attempt, ttl, max_events = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
  local h = p .. 'job:' .. id
  local st = redis.call('HGET', h, 'state')
  if st and TERMINAL[st] then return 0 end
  redis.call('HSET', h, 'state', 'running', 'started_at', now, 'updated_at', now, 'node', node,
             'worker_pid', pid, 'attempt', attempt, 'max_attempts', a[9], 'progress', '0', 'stage', '', 'message', '')
  emit(p, id, event_json(id, 'state', 'running', attempt, '0', now), max_events, ttl, false)
  CELERY.run(p, id, node, pid)
  return 1
end
