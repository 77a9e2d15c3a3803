-- hopper_progress(prefix, id, now, progress, stage, message, attempt, ttl, max_events): a running job's
-- progress. Progress never goes down within an attempt; nothing is written once the job left `running`.
OPS.progress = function(a)
  local p, id, now, pr, stage, msg = a[1], a[2], a[3], tonumber(a[4]), a[5], a[6]
  local attempt, ttl, max_events = tonumber(a[7]), tonumber(a[8]), tonumber(a[9])
  local h = p .. 'job:' .. id
  local st, _, old = job_status(h)
  if st ~= 'running' then return 0 end
  if pr < old then pr = old end
  redis.call('HSET', h, 'progress', pr, 'stage', stage, 'message', msg, 'updated_at', now)
  local ev = {job = id, event = 'progress', state = 'running', attempt = attempt, progress = pr, at = tonumber(now)}
  if stage ~= '' then ev.stage = stage end
  if msg ~= '' then ev.message = msg end
  emit(p, id, ev, max_events, ttl, false)
  return 1
end
