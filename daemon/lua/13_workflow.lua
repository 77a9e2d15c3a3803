SPEC.step_save = {keys = {'job', 'steps'}, args = {'fence', 'step', 'record', 'ttl'}, flags = 'allow-oom'}
-- The outcome of a workflow.run step, which a later attempt of the run takes over instead of running the
-- step again. Fenced like every write of an attempt ('ok' or 'superseded'). The hash expires ttl seconds
-- after its last write (result_ttl_s, like the job's own hash once it ends).
OPS.step_save = function(k, a)
  if redis.call('HGET', k.job, 'fence') ~= a.fence then return 'superseded' end
  redis.call('HSET', k.steps, a.step, a.record)
  redis.call('EXPIRE', k.steps, a.ttl)
  return 'ok'
end

SPEC.enqueue = {keys = {'queue', 'job', 'events', 'idem', 'jobs', 'stats'},
                args = {'id', 'type', 'max_attempts', 'created_at', 'owner', 'idem', 'payload', 'ttl', 'max_events'}}
-- A workflow's enqueue step submits a child job (admitted by job_create, then pushed to its queue). A job of
-- that id that exists already is left alone: the step ran before, in an attempt that died before its record
-- was saved. Returns {'ok', id}, {'exists', state} or {'duplicate', holder, state}.
OPS.enqueue = function(k, a)
  local r = job_create(k, a, clock(), a.ttl, a.max_events, false)
  if r[1] ~= 'created' then return r end
  redis.call('LPUSH', k.queue, a.payload)
  return {'ok', a.id}
end
