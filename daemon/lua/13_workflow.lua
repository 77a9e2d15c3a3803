-- hopper_step_save(prefix, id, step, record, ttl): the outcome of a workflow.run step, which a later
-- attempt of the run takes over instead of running the step again. The hash expires ttl seconds after its
-- last write (result_ttl_s, like the job's own hash once it ends).
OPS.step_save = function(a)
  local k = a[1] .. 'job:' .. a[2] .. ':steps'
  redis.call('HSET', k, a[3], a[4])
  redis.call('EXPIRE', k, a[5])
  return 1
end

-- hopper_enqueue(prefix, queue, id, type, payload, now, max_attempts, owner): a workflow's enqueue step submits
-- a child job, as hopper's clients do (hash first, then the queue); the child belongs to the parent's owner
-- (hopperd passes it; '' for none). A job of that id that already exists is left alone: the step ran before,
-- in an attempt that died before its record was saved. Returns {'ok', id} or {'exists', owner} - hopperd
-- (daemon/workflows.c) decides what the step may learn: another owner's job answers like a free id.
OPS.enqueue = function(a)
  local p, q, id, typ, payload, now, max_attempts, owner = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8] or ''
  local h = p .. 'job:' .. id
  if redis.call('EXISTS', h) == 1 then return {'exists', redis.call('HGET', h, 'owner') or ''} end
  redis.call('HSET', h, 'id', id, 'type', typ, 'queue', q, 'state', 'queued', 'attempt', '0',
             'max_attempts', max_attempts, 'progress', '0', 'created_at', now, 'enqueued_at', now,
             'updated_at', now, 'payload', payload, 'stalls', '0')
  if owner ~= '' then redis.call('HSET', h, 'owner', owner) end
  redis.call('LPUSH', p .. 'queue:' .. q, payload)
  return {'ok', id}
end
