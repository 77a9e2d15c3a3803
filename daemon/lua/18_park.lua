-- Durable waits (README "Durable waits"): a workflow run ends an attempt with a park instead of a result, and
-- waits in its queue's scheduled set, holding no worker, until its time (or a wake) promotes it again.
--
-- A park is not a failure: it gives its attempt number back (like a requeue, 03_run.lua), so "attempt N of
-- M" counts only the attempts that ended otherwise, and counts itself in the hash's `parks`. The hash says
-- what the run waits for: state 'scheduled', run_at, stage 'waiting', message 'waiting: REASON', and `wake`
-- (the child job id it waits for, '' for none).

SPEC.park = {keys = {'inflight', 'job', 'events', 'scheduled', 'steps'},
             args = {'payload', 'id', 'fence', 'node', 'attempt', 'until', 'reason', 'wake', 'ran', 'pid', 'ttl',
                     'max_events'},
             flags = 'allow-oom'}
-- Takes the attempt out of this node's inflight list and parks the job until `until` (Unix seconds; a time
-- already past parks it until now, Redis's clock). When the child it waits for (wake) ended before the park
-- arrived (hopper_wake found the run still running and left `woken`), it is due at once. Gives back the
-- concurrency slot it held, like a retry. Returns {'ok', run_at}, 'terminal' (it ended meanwhile: only the
-- inflight entry went) or 'superseded' (another claim holds it: nothing written but the inflight entry).
OPS.park = function(k, a)
  redis.call('LREM', k.inflight, -1, a.payload)
  local f, why = fenced(k, a.fence)
  if not f then return why end
  if TERMINAL[f[1]] then return 'terminal' end
  -- A park resent after its reply was lost is answered again unchanged (each claim has its own fence).
  local done = redis.call('HMGET', k.job, 'parked_fence', 'run_at')
  if done[1] == a.fence then return {'ok', done[2]} end
  local now = clock()
  local at = a['until']
  if tonumber(at) < tonumber(now) then at = now end
  local woken = redis.call('HGET', k.job, 'woken')
  if a.wake ~= '' and woken == a.wake then at = now end
  local attempt = tostring(math.max(0, tonumber(a.attempt) - 1))
  local started = string.format('%.3f', tonumber(now) - tonumber(a.ran))
  redis.call('HSET', k.job, 'state', 'scheduled', 'run_at', at, 'stage', 'waiting', 'message', 'waiting: ' .. a.reason,
             'wake', a.wake, 'attempt', attempt, 'inc', '', 'node', a.node, 'worker_pid', a.pid, 'started_at', started,
             'updated_at', now, 'parked_fence', a.fence)
  redis.call('HDEL', k.job, 'woken')
  redis.call('HINCRBY', k.job, 'parks', 1)
  redis.call('ZADD', k.scheduled, at, a.payload)
  -- The run's step records must outlive the wait (they expire result_ttl_s after their last write): the
  -- resumed attempt takes them over instead of running the earlier steps again.
  if redis.call('EXISTS', k.steps) == 1 then
    redis.call('EXPIRE', k.steps, math.ceil(tonumber(at) - tonumber(now)) + tonumber(a.ttl))
  end
  emit(k, event_json(a.id, 'state', 'scheduled', attempt, f[3] or '0', now, text_field('message', 'waiting: ' .. a.reason)),
       a.max_events, a.ttl, false)
  if f[8] then LIMITS.release(k.job, a.id, f[8]) end
  return {'ok', at}
end

SPEC.wake = {keys = {'job', 'scheduled'}, args = {'child', 'owner'}, flags = 'allow-oom'}
-- The child job `child` ended: its parent (k.job, in the parent's queue) is due now if it is parked waiting
-- for that child ('woken'); if it is not parked on it (still running, its park on the way), `woken` tells
-- a later park on that child to make it due at once ('noted'); an ended run is left alone ('not_waiting').
-- A wake never moves a run that waits for something else, and a lost wake only delays the run until its
-- park's fallback time. owner: the child's (or the event key's) owner, '' for none: only the parent's own
-- owner may wake it (a message that names another owner's job as its parent moves nothing).
OPS.wake = function(k, a)
  local f = redis.call('HMGET', k.job, 'state', 'wake', 'payload', 'owner')
  if (f[4] or '') ~= a.owner then return 'not_waiting' end
  if f[1] == 'scheduled' and f[2] == a.child and f[3] and redis.call('ZSCORE', k.scheduled, f[3]) then
    redis.call('ZADD', k.scheduled, 'XX', clock(), f[3])
    redis.call('HSET', k.job, 'run_at', clock(), 'wake', '')
    return 'woken'
  end
  if f[1] and not TERMINAL[f[1]] then
    -- Not parked on it (yet): running, or a resumed attempt whose 'running' was not written yet. (A run
    -- parked on another wait ignores it: every park clears `woken`, and only a park on this child reads it.)
    redis.call('HSET', k.job, 'woken', a.child)
    return 'noted'
  end
  return 'not_waiting'
end
