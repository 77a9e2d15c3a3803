-- hopper_schedule(prefix, node, queue, id, payload, now, run_at, type, created_at, max_attempts, ttl,
--                 max_events): a fetched job whose run_at is still ahead waits in the queue's scheduled set.
OPS.schedule = function(a)
  local p, node, q, id, payload, now, run_at = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
  local typ, created, max_attempts, ttl, max_events = a[8], a[9], a[10], a[11], a[12]
  if redis.call('LREM', p .. 'inflight:' .. node .. ':' .. q, -1, payload) == 0 then return 0 end
  redis.call('ZADD', p .. 'scheduled:' .. q, run_at, payload)
  local h = p .. 'job:' .. id
  if redis.call('EXISTS', h) == 0 then
    redis.call('HSET', h, 'id', id, 'type', typ, 'queue', q, 'state', 'queued', 'attempt', '0',
               'max_attempts', max_attempts, 'progress', '0', 'created_at', created, 'enqueued_at', now,
               'updated_at', now, 'payload', payload, 'stalls', '0')
    emit(p, id, event_json(id, 'state', 'queued', '0', '0', now), max_events, ttl, false)
  end
  redis.call('HSET', h, 'run_at', run_at)
  return 1
end
