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

SPEC.wf_restart = {keys = {'job', 'events', 'queue', 'dead', 'deadmsg', 'jobs', 'steps'},
                   args = {'id', 'owner', 'admin', 'ttl', 'max_events', 'step'}}
-- `workflow restart RUN --from STEP`: an ended workflow.run (succeeded, failed or dead) runs again, keeping
-- the outcomes of the steps that do not depend on STEP. Its step records go for STEP and for every step
-- whose record names STEP among its ancestors ("after", written by the worker from the definition's
-- dependency closure); a record without "after" (or one that does not decode) goes too: re-running a step
-- is safe where keeping an output STEP fed is not. Then it is requeued like a retry (requeue_ended), and
-- the next attempt resumes from the records kept. STEP must have a record: a step that never ran cannot
-- be restarted from (a plain retry already runs it). The records left get a fresh TTL, so they outlive the
-- run's wait in its queue. Returns {'ok', queue, dropped ids joined by ','}, {'not_found'},
-- {'conflict', state}, {'not_workflow', type}, {'no_step', ids with records joined by ','} or
-- {'held', holder}.
OPS.wf_restart = function(k, a)
  local st, ty, payload, fl = unpack(redis.call('HMGET', k.job, 'state', 'type', 'payload', 'flow'))
  if not st or not visible(k.job, a.owner, a.admin) then return {'not_found'} end
  if ty ~= 'workflow.run' then return {'not_workflow', ty or ''} end
  if st ~= 'succeeded' and st ~= 'failed' and st ~= 'dead' then return {'conflict', st} end
  if not payload then return {'conflict', 'no payload kept'} end
  local recs = redis.call('HGETALL', k.steps)
  local drop, have, found = {}, {}, false
  for i = 1, #recs, 2 do
    local id = recs[i]
    have[#have + 1] = id
    if id == a.step then
      found = true
      drop[#drop + 1] = id
    else
      local ok, r = pcall(cjson.decode, recs[i + 1])
      local after = ok and type(r) == 'table' and r.after
      local dependent = type(after) ~= 'table'
      if not dependent then
        for _, anc in ipairs(after) do
          if anc == a.step then dependent = true end
        end
      end
      if dependent then drop[#drop + 1] = id end
    end
  end
  if not found then
    table.sort(have)
    return {'no_step', table.concat(have, ',')}
  end
  local holder = fl and FLOW.retake(a.id, k.job, fl)
  if holder then return {'held', holder} end
  redis.call('HDEL', k.steps, unpack(drop))
  if redis.call('EXISTS', k.steps) == 1 then redis.call('EXPIRE', k.steps, a.ttl) end
  requeue_ended(k, a, payload)
  table.sort(drop)
  return {'ok', key_tag(k.job), table.concat(drop, ',')}
end
