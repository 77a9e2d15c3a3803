-- hopper_requeue(prefix, node, queue, id, payload, now, attempt, ttl, max_events): puts a job this node
-- holds back at the head of its queue (shutdown). If it was running as `attempt`, that attempt is taken
-- back: being stopped by a shutdown is not the job's failure. Returns 1, or 0 if it was no longer held.
OPS.requeue = function(a)
  local p, node, q, id, payload, now, attempt = a[1], a[2], a[3], a[4], a[5], a[6], tonumber(a[7])
  local ttl, max_events = a[8], a[9]
  if redis.call('LREM', p .. 'inflight:' .. node .. ':' .. q, -1, payload) == 0 then return 0 end
  redis.call('RPUSH', p .. 'queue:' .. q, payload)
  if id == '' then return 1 end
  local h = p .. 'job:' .. id
  local st = redis.call('HGET', h, 'state')
  if st and not TERMINAL[st] then
    redis.call('HSET', h, 'state', 'queued', 'updated_at', now, 'progress', '0')
    if st == 'running' and tonumber(redis.call('HGET', h, 'attempt')) == attempt then
      redis.call('HSET', h, 'attempt', tostring(attempt - 1))
    end
    emit(p, id, event_json(id, 'state', 'queued', redis.call('HGET', h, 'attempt') or '0', '0', now), max_events,
         ttl, false)
  end
  return 1
end
