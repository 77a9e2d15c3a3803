-- hopper_bury(prefix, node, queue, id, payload, now, error, dead_entry, ttl, max_events): a message that
-- cannot become a job (malformed, unknown type, oversized) moves from the inflight list to the dead list.
-- If it carried a usable id, that job's hash records the error. Returns 1, or 0 if already handled.
OPS.bury = function(a)
  local p, node, q, id, payload, now, err, entry = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
  local ttl, max_events = a[9], a[10]
  if redis.call('LREM', p .. 'inflight:' .. node .. ':' .. q, -1, payload) == 0 then return 0 end
  redis.call('LPUSH', p .. 'dead', entry)
  if id == '' then
    redis.call('HINCRBY', p .. 'stats', 'dead', '1')
    return 1
  end
  local st, attempt, progress = job_status(p .. 'job:' .. id)
  if st and TERMINAL[st] then return 1 end
  redis.call('HSET', p .. 'job:' .. id, 'id', id, 'queue', q, 'attempt', attempt)
  redis.call('HSETNX', p .. 'job:' .. id, 'payload', payload)
  finish_terminal(p, id, 'dead', now, err, max_events, ttl, attempt, progress)
  CELERY.finish(p, id, 'dead', nil, err, now) -- a Celery task reads FAILURE
  return 1
end
