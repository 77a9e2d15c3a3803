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

SPEC.enqueue = {keys = {'queue', 'job', 'events', 'idem', 'jobs', 'stats', 'flow', 'scheduled'},
                args = {'id', 'type', 'max_attempts', 'created_at', 'owner', 'idem', 'payload', 'flow', 'run_at', 'ttl',
                        'max_events'}}
-- A workflow's enqueue step submits a child job (admitted by job_create, then pushed to its queue, or to the
-- scheduled set when a debounce delays it); the child belongs to the parent's owner (hopperd passes it; ''
-- for none) and may be unique or debounced like any job (flow, k.flow: 16_flow.lua). A job of that id that
-- exists already is left alone: the step ran before, in an attempt that died before its record was saved.
-- Returns {'ok', id}, {'exists', state, owner} or {'duplicate', holder, state[, 'unique']}: hopperd
-- (daemon/workflows.c) decides what the step may learn (another owner's job answers like a free id).
OPS.enqueue = function(k, a)
  local r = admit_push(k, a, clock(), a.ttl, a.max_events)
  if r[1] == 'exists' then return {'exists', r[2], redis.call('HGET', k.job, 'owner') or ''} end
  if r[1] ~= 'created' then return r end
  return {'ok', a.id}
end
