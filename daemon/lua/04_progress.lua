-- hopper_progress(prefix, id, now, progress, stage, message, attempt, ttl, max_events): a running job's
-- progress. Progress never goes down within an attempt; nothing is written once the job left `running`.
OPS.progress = function(a)
  local p, id, now, pr, stage, msg = a[1], a[2], a[3], a[4], a[5], a[6]
  local attempt, ttl, max_events = a[7], a[8], a[9]
  local h = p .. 'job:' .. id
  local st, _, old = job_status(h)
  if st ~= 'running' then return 0 end
  if tonumber(pr) < tonumber(old) then pr = old end
  redis.call('HSET', h, 'progress', pr, 'stage', stage, 'message', msg, 'updated_at', now)
  emit(p, id, event_json(id, 'progress', 'running', attempt, pr, now,
                         text_field('stage', stage) .. text_field('message', msg)), max_events, ttl, false)
  CELERY.progress(p, id, pr, stage, msg)
  return 1
end
