-- Events for workflows that wait (issue #18; daemon/ctl/ctl_event.c, the wait_event step). An event is a key
-- and a JSON value; `event.send` appends it to the key's stream P{@}:evt:[@LEN:OWNER:]KEY and hands back the
-- runs that wait for that key (P{@}:evw:..., members "QUEUE<TAB>ID" scored by their deadline), which hopperd
-- then wakes on their own queues. A waiting run asks with `event_wait`, which looks back first: an event
-- sent at or after `since_ms` (the wait's start minus its lookback) is returned at once, so an event sent
-- just before the wait began is not missed; otherwise the run is registered as a waiter in the same atomic
-- step, so no event can slip between the look and the registration. Both keys are bounded: the stream by
-- count (MAXLEN) and age (PEXPIRE after each send, event_keep_s), the waiters by count (max_waiters) and by
-- age (their deadline; expired members are dropped on every send and wait, the key expires after the last).

SPEC.event_send = {keys = {'g_evt', 'g_evw'}, args = {'data', 'keep_ms', 'max'}}
-- Appends data (JSON text, checked by hopperd) and removes every waiter. Returns {event id, at ms, member...}:
-- the event's stream id, Redis's time of it, and the runs to wake (expired waiters are not among them).
OPS.event_send = function(k, a)
  local now = clock_ms()
  local id = redis.call('XADD', k.g_evt, 'MAXLEN', a.max, '*', 'data', a.data)
  redis.call('PEXPIRE', k.g_evt, a.keep_ms)
  redis.call('ZREMRANGEBYSCORE', k.g_evw, '-inf', '(' .. now)
  local out = {id, tostring(now)}
  local waiters = redis.call('ZRANGE', k.g_evw, 0, -1)
  for i = 1, #waiters do out[#out + 1] = waiters[i] end
  redis.call('DEL', k.g_evw)
  return out
end

SPEC.event_wait = {keys = {'g_evt', 'g_evw'}, args = {'since_ms', 'member', 'deadline_ms', 'max_waiters'}}
-- The first event from since_ms to deadline_ms: {'event', id, data}. Else, past the deadline: {'timeout'} (and the
-- member is no longer a waiter). Else the member waits (re-registering moves its deadline):
-- {'waiting', now ms}, or {'full'} when the key already has max_waiters other waiters.
OPS.event_wait = function(k, a)
  local now = clock_ms()
  -- An event after the deadline is not this wait's (the wait timed out before it came).
  local first = redis.call('XRANGE', k.g_evt, a.since_ms, a.deadline_ms, 'COUNT', 1)
  if #first > 0 then
    redis.call('ZREM', k.g_evw, a.member)
    local f = first[1][2]
    local data = ''
    for i = 1, #f, 2 do if f[i] == 'data' then data = f[i + 1] end end
    return {'event', first[1][1], data}
  end
  local deadline = tonumber(a.deadline_ms)
  if deadline <= now then
    redis.call('ZREM', k.g_evw, a.member)
    return {'timeout'}
  end
  redis.call('ZREMRANGEBYSCORE', k.g_evw, '-inf', '(' .. now)
  if redis.call('ZSCORE', k.g_evw, a.member) == false and
     redis.call('ZCARD', k.g_evw) >= tonumber(a.max_waiters) then
    return {'full'}
  end
  redis.call('ZADD', k.g_evw, deadline, a.member)
  -- The key lives as long as its last waiter's deadline (plus a minute, so a late wake still finds it).
  local last = redis.call('ZRANGE', k.g_evw, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', k.g_evw, math.max(tonumber(last[2]) - now, 0) + 60000)
  return {'waiting', tostring(now)}
end

SPEC.event_list = {keys = {'g_evt', 'g_evw'}, args = {'since_ms', 'count'}, flags = 'no-writes'}
-- Up to count events at or after since_ms, oldest first: {waiters, id, data, id, data, ...}; waiters is the
-- number of runs waiting (expired ones included until the next send or wait drops them).
OPS.event_list = function(k, a)
  local out = {redis.call('ZCARD', k.g_evw)}
  local rows = redis.call('XRANGE', k.g_evt, a.since_ms, '+', 'COUNT', a.count)
  for i = 1, #rows do
    local f = rows[i][2]
    local data = ''
    for j = 1, #f, 2 do if f[j] == 'data' then data = f[j + 1] end end
    out[#out + 1] = rows[i][1]
    out[#out + 1] = data
  end
  return out
end

SPEC.wait_note = {keys = {'job'}, args = {'fence', 'key'}, flags = 'allow-oom'}
-- A run's attempt is about to wait for event key: the job's hash remembers it (field evwait), so that a cancel
-- can take the run off the key's waiters (event_unwait) instead of leaving it there until its deadline. The
-- waiters live in the deployment-wide slot and the hash in its queue's, hence two calls. Fenced.
OPS.wait_note = function(k, a)
  if redis.call('HGET', k.job, 'fence') ~= a.fence then return 'superseded' end
  redis.call('HSET', k.job, 'evwait', a.key)
  return 'ok'
end

SPEC.event_unwait = {keys = {'g_evw'}, args = {'member'}, flags = 'allow-oom'}
-- A cancelled run ("QUEUE<TAB>ID") no longer waits for the key. Returns 1 if it was a waiter, else 0.
OPS.event_unwait = function(k, a)
  return redis.call('ZREM', k.g_evw, a.member)
end
