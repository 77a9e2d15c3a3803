-- hopper_finish(prefix, node, queue, id, payload, now, outcome, attempt, error, result, run_at, ttl,
--               max_events, worker_pid, started_at, max_attempts)
-- Writes an attempt's outcome and takes the job out of this node's inflight list, in one step.
-- outcome: succeeded, failed, dead, cancelled (terminal) or retrying (into the scheduled set at run_at).
-- A job that already ended, or whose attempt counter moved past this one (a newer attempt owns it), is only
-- acknowledged: a late duplicate never overwrites. Returns 1 if written, 0 if only acknowledged.
OPS.finish = function(a)
  local p, node, q, id, payload, now, outcome = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
  local attempt, err, result, run_at = a[8], a[9], a[10], a[11]
  local ttl, max_events, pid, started, max_attempts = a[12], a[13], a[14], a[15], a[16]
  redis.call('LREM', p .. 'inflight:' .. node .. ':' .. q, -1, payload)
  local h = p .. 'job:' .. id
  local st, cur, progress = job_status(h)
  if st and TERMINAL[st] then return 0 end
  if st and tonumber(cur) > tonumber(attempt) then return 0 end
  if outcome == 'succeeded' then
    progress = '100'
    redis.call('HSET', h, 'attempt', attempt, 'worker_pid', pid, 'started_at', started, 'node', node,
               'max_attempts', max_attempts, 'progress', '100', 'result', result)
  else
    redis.call('HSET', h, 'attempt', attempt, 'worker_pid', pid, 'started_at', started, 'node', node,
               'max_attempts', max_attempts)
  end
  if outcome == 'retrying' then
    redis.call('HSET', h, 'state', 'retrying', 'error', err, 'run_at', run_at, 'updated_at', now)
    redis.call('ZADD', p .. 'scheduled:' .. q, run_at, payload)
    redis.call('HINCRBY', p .. 'stats', 'retried', '1')
    emit(p, id, event_json(id, 'state', 'retrying', attempt, progress, now, text_field('error', err)), max_events,
         ttl, false)
    CELERY.finish(p, id, outcome, result, err, now)
    return 1
  end
  finish_terminal(p, id, outcome, now, err, max_events, ttl, attempt, progress)
  CELERY.finish(p, id, outcome, result, err, now)
  if outcome == 'dead' then
    redis.call('LPUSH', p .. 'dead', cjson.encode({id = id, queue = q, type = redis.call('HGET', h, 'type') or cjson.null,
      error = err, died_at = tonumber(now), attempt = tonumber(attempt), node = node, payload = payload}))
  end
  return 1
end
