-- hopper_claim(prefix, node, queue, id, now, type, max_attempts, max_stalls, payload, created_at, owner,
--              idempotency_key, ttl, max_events)
-- Decides whether a fetched, valid job may run here. Returns
--   {'ok', attempt}     run it, as this attempt number (hopper_run records it when a worker takes it);
--   {'skip', state}     it already ended (a late duplicate delivery): acknowledged, not run;
--   {'dup', other_id}   another job holds its idempotency key: it ends cancelled;
--   {'dead', error}     it was lost with its daemon max_stalls times (a poison pill): it ends dead;
--   {'paused', queue}   its queue is paused: it went back to the head of the queue, nothing written.
-- A job whose hash still says running was being run by a daemon that died before finishing it: a stall.
-- (A job that was only prefetched by a dead daemon is not held against it.)
local function claim_job(p, node, q, id, now, typ, max_attempts, max_stalls, payload, created, owner, idem, ttl,
                         max_events)
  local h = p .. 'job:' .. id
  local infl = p .. 'inflight:' .. node .. ':' .. q
  if redis.call('SISMEMBER', p .. 'paused', q) == 1 then
    -- Paused (control op pause) after a blocking fetch took it: back to the head of its queue, untouched.
    redis.call('LREM', infl, -1, payload)
    redis.call('RPUSH', p .. 'queue:' .. q, payload)
    return {'paused', q}
  end
  local st, attempt, progress = job_status(h)
  if st and TERMINAL[st] then
    redis.call('LREM', infl, -1, payload)
    return {'skip', st}
  end
  if st and CELERY.expired(p, id, now) then
    redis.call('LREM', infl, -1, payload)
    finish_terminal(p, id, 'cancelled', now, 'expired', max_events, ttl, attempt, progress)
    CELERY.finish(p, id, 'cancelled', nil, 'expired', now)
    return {'skip', 'cancelled'}
  end
  if not st then
    redis.call('HSET', h, 'id', id, 'type', typ, 'queue', q, 'state', 'queued', 'attempt', '0',
               'max_attempts', max_attempts, 'progress', '0', 'created_at', created, 'enqueued_at', now,
               'updated_at', now, 'payload', payload, 'stalls', '0')
    if owner ~= '' then redis.call('HSET', h, 'owner', owner) end
    if idem ~= '' then redis.call('HSET', h, 'idempotency_key', idem) end
    emit(p, id, event_json(id, 'state', 'queued', '0', '0', now), max_events, ttl, false)
    index_add(p, id, now, ttl) -- the control socket's list (12_ctl.lua)
  end
  if idem ~= '' then
    local k = idem_key(p, owner, idem) -- per owner (00_common.lua)
    local holder = redis.call('GET', k)
    if holder and holder ~= id then
      redis.call('LREM', infl, -1, payload)
      finish_terminal(p, id, 'cancelled', now, 'duplicate of job ' .. holder .. ' (idempotency_key ' .. idem .. ')',
                      max_events, ttl, attempt, progress)
      return {'dup', holder}
    end
    redis.call('SET', k, id, 'EX', ttl)
  end
  if st == 'running' then
    local claimed = redis.call('HGET', h, 'node') or '?'
    local stalls = redis.call('HINCRBY', h, 'stalls', 1)
    if stalls >= max_stalls then
      local err = 'stalled ' .. stalls .. ' times: the daemon running it died each time (last on node ' ..
                  claimed .. ')'
      redis.call('LREM', infl, -1, payload)
      finish_terminal(p, id, 'dead', now, err, max_events, ttl, attempt, progress)
      redis.call('LPUSH', p .. 'dead', cjson.encode({id = id, queue = q, type = typ, error = err,
        died_at = tonumber(now), attempt = tonumber(attempt), node = node, payload = payload}))
      CELERY.finish(p, id, 'dead', nil, err, now)
      return {'dead', err}
    end
  end
  if st then redis.call('PERSIST', h) end
  return {'ok', tonumber(attempt) + 1}
end

OPS.claim = function(a)
  return claim_job(a[1], a[2], a[3], a[4], a[5], a[6], a[7], tonumber(a[8]), a[9], a[10], a[11], a[12], a[13],
                   a[14])
end
