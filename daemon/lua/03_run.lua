-- The writes of a running attempt (allow-oom, like finish: they share its batch, so a turn's progress reaches
-- Redis before the same turn's finish, and a running job reports and ends while Redis is at maxmemory;
-- events lists are bounded). Each carries the attempt's fencing token (fence, from claim) and is refused
-- with 'superseded' when the hash holds another one (a later claim took the job over: this node was reaped
-- while alive, or Redis lost the claim): hopperd then stops the attempt and logs it superseded.

-- f[5] is the Celery result key: only Celery-sourced jobs have one, and only they run the CELERY hooks
-- (which read the hash again), so a plain job pays no Celery work. f[6]: the hash's error (finish drops
-- a stale one only if there is one). f[7]: the unique / debounce lock (16_flow.lua), released by run.
-- f[8]: the concurrency slot (17_limits.lua), given back by a retry or requeue (a terminal state's
-- finish_terminal gives it back too). f[9]: the rate limit's due token (finish_terminal's release hooks
-- take 7 to 9 from here instead of reading the hash again).
local function fenced(k, fence)
  local f = redis.call('HMGET', k.job, 'state', 'fence', 'progress', 'attempt', 'celery_key', 'error', 'flow', 'cc',
                       'rl_due')
  if not f[1] or f[2] ~= fence then return nil, 'superseded' end
  return f
end

SPEC.run = {keys = {'job', 'events'}, args = {'id', 'fence', 'node', 'pid', 'attempt', 'max_attempts', 'ttl', 'max_events'},
            flags = 'allow-oom'}
-- The job went to a worker. Returns 'ok', 'terminal' (it ended meanwhile: cancelled; stop it) or 'superseded'.
OPS.run = function(k, a)
  local f, why = fenced(k, a.fence)
  if not f then return why end
  if TERMINAL[f[1]] then return 'terminal' end
  local now = clock()
  redis.call('HSET', k.job, 'state', 'running', 'started_at', now, 'updated_at', now, 'node', a.node, 'worker_pid',
             a.pid, 'attempt', a.attempt, 'max_attempts', a.max_attempts, 'progress', '0', 'stage', '', 'message', '')
  emit(k, event_json(a.id, 'state', 'running', a.attempt, '0', now), a.max_events, a.ttl, false)
  if f[5] then CELERY.run(k, a.id, a.node, a.pid) end
  if f[7] then FLOW.started(a.id, f[7]) end
  return 'ok'
end

SPEC.progress = {keys = {'job', 'events'},
                 args = {'id', 'fence', 'attempt', 'progress', 'stage', 'message', 'ttl', 'max_events'},
                 flags = 'allow-oom'}
-- A running job's progress; never goes down within an attempt. 'ok', 'ignored' (not running), 'superseded'.
OPS.progress = function(k, a)
  local f, why = fenced(k, a.fence)
  if not f then return why end
  if f[1] ~= 'running' then return 'ignored' end
  local pr = a.progress
  if tonumber(pr) < tonumber(f[3] or '0') then pr = f[3] end
  redis.call('HSET', k.job, 'progress', pr, 'stage', a.stage, 'message', a.message, 'updated_at', clock())
  emit(k, event_json(a.id, 'progress', 'running', a.attempt, pr, clock(),
                     text_field('stage', a.stage) .. text_field('message', a.message)), a.max_events, a.ttl, false)
  if f[5] then CELERY.progress(k, a.id, pr, a.stage, a.message) end
  return 'ok'
end

SPEC.finish = {keys = {'inflight', 'job', 'events', 'scheduled', 'dead', 'deadmsg', 'stats'},
               args = {'payload', 'id', 'fence', 'node', 'outcome', 'attempt', 'error', 'result', 'delay', 'ran', 'pid',
                       'max_attempts', 'ttl', 'max_events', 'dead_max', 'dead_age'},
               flags = 'allow-oom'}
-- Writes an attempt's outcome and takes the job out of this node's inflight list, in one step. outcome:
-- succeeded, failed, dead, cancelled (terminal) or retrying (into the scheduled set `delay` seconds from
-- now, Redis's clock). ran: how long the attempt ran (hopperd's monotonic clock), for started_at. Returns
-- 'ok'; 'terminal' when the job had ended already (only the inflight entry went); 'superseded' when the
-- hash holds another fencing token (nothing written but the inflight entry).
OPS.finish = function(k, a)
  redis.call('LREM', k.inflight, -1, a.payload)
  local f, why = fenced(k, a.fence)
  if not f then return why end
  if TERMINAL[f[1]] then return 'terminal' end
  local now = clock()
  local progress = f[3] or '0'
  local started = string.format('%.3f', clock_num() - tonumber(a.ran))
  -- The attempt's fields go with the outcome's in one HSET.
  local fields = {'attempt', a.attempt, 'worker_pid', a.pid, 'started_at', started, 'node', a.node,
                  'max_attempts', a.max_attempts, 'inc', ''}
  if a.outcome == 'succeeded' then
    progress = '100'
    fields[13], fields[14], fields[15], fields[16] = 'progress', '100', 'result', a.result
  end
  if a.outcome == 'retrying' then
    local run_at = string.format('%.3f', clock_num() + tonumber(a.delay))
    fields[13], fields[14], fields[15], fields[16], fields[17], fields[18], fields[19], fields[20] =
      'state', 'retrying', 'error', a.error, 'run_at', run_at, 'updated_at', now
    redis.call('HSET', k.job, unpack(fields))
    redis.call('ZADD', k.scheduled, run_at, a.payload)
    stat_incr(k.stats, 'retried')
    emit(k, event_json(a.id, 'state', 'retrying', a.attempt, progress, now, text_field('error', a.error)),
         a.max_events, a.ttl, false)
    if f[5] then CELERY.finish(k, a.id, a.outcome, a.result, a.error, now) end
    if f[8] then LIMITS.release(k.job, a.id, f[8]) end
    return 'ok'
  end
  finish_terminal(k, a.id, a.outcome, now, a.error, a.max_events, a.ttl, a.attempt, progress, fields,
                  not f[6], f)
  if f[5] then CELERY.finish(k, a.id, a.outcome, a.result, a.error, now) end
  if a.outcome == 'dead' then
    dead_add(k, a.id, dead_entry(a.id, key_tag(k.job), redis.call('HGET', k.job, 'type'), a.error, now, a.attempt,
                                 a.node, a.payload), now, a.dead_max, a.dead_age)
  end
  return 'ok'
end

SPEC.requeue = {keys = {'inflight', 'queue', 'job', 'events'},
                args = {'payload', 'id', 'fence', 'attempt', 'ttl', 'max_events'}, flags = 'allow-oom'}
-- Puts a job this node holds back at the head of its queue (shutdown, or a prefetched job that waited too
-- long). fence '' = never claimed: only the message moves. If it was running as `attempt`, that attempt is
-- taken back (being stopped by a shutdown is not the job's failure). Returns 'ok', 'gone' (no longer held),
-- 'terminal' (it ended: dropped) or 'superseded' (another holder owns it: this copy dropped).
OPS.requeue = function(k, a)
  if redis.call('LREM', k.inflight, -1, a.payload) == 0 then return 'gone' end
  if a.fence == '' then
    redis.call('RPUSH', k.queue, a.payload)
    return 'ok'
  end
  local f, why = fenced(k, a.fence)
  if not f then return why end
  if TERMINAL[f[1]] then return 'terminal' end
  redis.call('RPUSH', k.queue, a.payload)
  local attempt = f[4] or '0'
  if f[1] == 'running' and attempt == a.attempt then attempt = tostring(tonumber(attempt) - 1) end
  local now = clock()
  redis.call('HSET', k.job, 'state', 'queued', 'updated_at', now, 'progress', '0', 'inc', '', 'attempt', attempt)
  emit(k, event_json(a.id, 'state', 'queued', attempt, '0', now), a.max_events, a.ttl, false)
  if f[8] then LIMITS.release(k.job, a.id, f[8]) end
  return 'ok'
end
