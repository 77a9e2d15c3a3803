-- Intake: fetch moves messages into this node's inflight list (it never reads them); hopperd parses each
-- (jansson, common/job.c) and sends either claim (a valid job: admitted by job_create if new, then claimed)
-- or bury (a message that cannot become a job). ack drops a second copy of a job this node already holds.

SPEC.fetch = {keys = {'queue', 'inflight', 'paused'}, args = {'max'}, flags = 'allow-oom'}
-- Moves up to max messages from the queue into the inflight list. A paused queue gives nothing.
OPS.fetch = function(k, a)
  local out = {}
  if is_paused(k.paused) then return out end
  for _ = 1, num(a.max) do
    local v = redis.call('LMOVE', k.queue, k.inflight, 'RIGHT', 'LEFT')
    if not v then break end
    out[#out + 1] = v
  end
  return out
end

SPEC.claim = {keys = {'queue', 'inflight', 'paused', 'job', 'events', 'idem', 'jobs', 'stats', 'reaped', 'scheduled',
                      'dead', 'deadmsg', 'flow', 'rl', 'cc'},
              args = {'raw', 'payload', 'id', 'type', 'max_attempts', 'created_at', 'owner', 'idem', 'run_at', 'node',
                      'inc', 'max_stalls', 'ttl', 'max_events', 'dead_max', 'dead_age', 'flow', 'rl', 'cc'}}
-- A fetched, valid message (raw: its bytes in the inflight list; payload: the same with its id written in,
-- equal to raw when it had one). Admits it (job_create) if the id is new, then decides whether it runs here:
--   {'ok', attempt, fence, created_at}  run it as this attempt, holding this fencing token (fence is
--                           incremented by every claim; every later write of the attempt carries it);
--   {'skip', state}         it ended already (a late duplicate delivery): acknowledged, not run;
--   {'dup', holder}         another job of the queue holds its idempotency key or unique lock: it ends
--                           cancelled, with duplicate_of = holder;
--   {'duprun', node}        a second copy of a job a live daemon runs: acknowledged, that attempt untouched;
--   {'dead', error}         it was lost with its daemon max_stalls times (a poison pill), or its last
--                           allowed attempt was: it ends dead;
--   {'scheduled', run_at}   its run_at is ahead (Redis's clock), or its rate limit's token is due then
--                           (17_limits.lua): it waits in the scheduled set;
--   {'limited', key}        every slot of its concurrency key is held: it waits in the key's list;
--   {'paused', ''}          its queue is paused: back to the head of the queue (with its id);
--   {'gone', ''}            the message is no longer in this node's inflight list: nothing written.
-- A claim this node (incarnation inc) already made is answered again unchanged, so a claim whose reply was
-- lost with the connection can be resent.
OPS.claim = function(k, a)
  local now = clock()
  -- The message must still be in this node's inflight list: a reaper (this node was reaped while alive) or
  -- a reconcile may have returned it to the queue meanwhile, and admitting it here too would make a second
  -- job of one message. (After a lost reply the entry is the id-stamped payload.)
  if not redis.call('LPOS', k.inflight, a.raw) and (a.raw == a.payload or not redis.call('LPOS', k.inflight, a.payload)) then
    return {'gone', ''}
  end
  if is_paused(k.paused) then
    redis.call('LREM', k.inflight, -1, a.raw)
    redis.call('RPUSH', k.queue, a.payload)
    return {'paused', ''}
  end
  -- A new job that runs at once (not delayed, debounced, unique-locked or limited; an attempt left): its
  -- claim's fields go into job_create's HSET, one write of the hash instead of two on the common path.
  local run_at = a.run_at == '0' and 0 or tonumber(a.run_at)
  local direct = a.flow == '' and a.rl == '' and a.cc == '' and num(a.max_attempts) > 0 and run_at <= clock_num()
  local created = job_create(k, a, now, a.ttl, a.max_events, true, direct and a.inc or nil, a.node)
  if created[1] == 'duplicate' then
    redis.call('LREM', k.inflight, -1, a.raw)
    local why = 'idempotency_key ' .. a.idem
    if created[4] == 'unique' then
      why = 'unique key ' .. FLOW.key_text(k.flow)
      redis.call('HINCRBY', k.stats, 'unique_duplicates', 1)
    end
    finish_terminal(k, a.id, 'cancelled', now, 'duplicate of job ' .. created[2] .. ' (' .. why .. ')', a.max_events,
                    a.ttl, '0', '0', {'duplicate_of', created[2]})
    return {'dup', created[2]}
  end
  if created[1] == 'created' and created[2] then -- debounced: its start is the burst's
    a.run_at, run_at = created[2], tonumber(created[2])
  end
  local f
  if created[1] == 'created' then
    -- Just admitted: what the hash holds is known (saves a read on the common path).
    f = {'queued', '0', '0', '', '0', false, a.payload, (a.created_at ~= '' and a.created_at) or now, a.max_attempts}
  else
    f = redis.call('HMGET', k.job, 'state', 'attempt', 'progress', 'inc', 'fence', 'node', 'payload', 'created_at',
                   'max_attempts', 'celery_expires')
  end
  local st, attempt, progress, inc = f[1], f[2] or '0', f[3] or '0', f[4] or ''
  if inc == a.inc then
    return {'ok', num(attempt) + 1, num(f[5] or '0'), f[8] or ''} -- our own claim, resent
  end
  if TERMINAL[st] then
    redis.call('LREM', k.inflight, -1, a.raw)
    return {'skip', st}
  end
  -- Only a Celery task has an expiry (f[10]); a job admitted just now by this claim is never one.
  if f[10] and CELERY.expired(k, now) then
    redis.call('LREM', k.inflight, -1, a.raw)
    finish_terminal(k, a.id, 'cancelled', now, 'expired', a.max_events, a.ttl, attempt, progress)
    CELERY.finish(k, a.id, 'cancelled', nil, 'expired', now)
    return {'skip', 'cancelled'}
  end
  if st == 'running' and inc ~= '' and not redis.call('ZSCORE', k.reaped, inc) then
    -- A live daemon runs it (and holds its own copy): this is a second copy of its message.
    redis.call('LREM', k.inflight, -1, a.raw)
    return {'duprun', f[6] or '?'}
  end
  -- Claimed but not started elsewhere (or by a reaped incarnation): claimed again below with a new token;
  -- the earlier holder's run is then refused (superseded) and it drops its copy.
  if st == 'running' then
    -- Its holder was reaped mid-attempt (died, or silent for a lease): a stall.
    local stalls = redis.call('HINCRBY', k.job, 'stalls', 1)
    if stalls >= num(a.max_stalls) then
      local err = 'stalled ' .. stalls .. ' times: the daemon running it died each time (last on node ' ..
                  (f[6] or '?') .. ')'
      redis.call('LREM', k.inflight, -1, a.raw)
      finish_terminal(k, a.id, 'dead', now, err, a.max_events, a.ttl, attempt, progress)
      dead_add(k, a.id, dead_entry(a.id, key_tag(k.job), a.type, err, now, attempt, a.node, f[7] or a.payload), now,
               a.dead_max, a.dead_age)
      CELERY.finish(k, a.id, 'dead', nil, err, now)
      return {'dead', err}
    end
  end
  local max_attempts = f[9] or a.max_attempts
  if num(attempt) >= num(max_attempts) then
    -- Every attempt was used, the last one lost with its daemon: no attempt beyond max_attempts.
    local err = 'attempts exhausted (' .. attempt .. ' of ' .. max_attempts .. '; the last was lost with node ' ..
                (f[6] or '?') .. ')'
    redis.call('LREM', k.inflight, -1, a.raw)
    finish_terminal(k, a.id, 'dead', now, err, a.max_events, a.ttl, attempt, progress)
    dead_add(k, a.id, dead_entry(a.id, key_tag(k.job), a.type, err, now, attempt, a.node, f[7] or a.payload), now,
             a.dead_max, a.dead_age)
    CELERY.finish(k, a.id, 'dead', nil, err, now)
    return {'dead', err}
  end
  if a.raw ~= a.payload then
    -- It came without an id: from now on the stored message carries the one it was given.
    redis.call('LREM', k.inflight, -1, a.raw)
    redis.call('LPUSH', k.inflight, a.payload)
  end
  if run_at > clock_num() then
    redis.call('LREM', k.inflight, -1, a.payload)
    redis.call('ZADD', k.scheduled, a.run_at, a.payload)
    redis.call('HSET', k.job, 'run_at', a.run_at, 'inc', '')
    return {'scheduled', a.run_at}
  end
  if a.rl ~= '' or a.cc ~= '' then
    local parked = LIMITS.admit(k, a, now, st, attempt)
    if parked then return parked end
  end
  local fence = num(f[5] or '0') + 1
  if not (created[1] == 'created' and direct) then -- (else job_create wrote these, fence 1)
    redis.call('HSET', k.job, 'fence', string.format('%d', fence), 'inc', a.inc, 'node', a.node)
  end
  if created[1] ~= 'created' then redis.call('PERSIST', k.job) end
  return {'ok', num(attempt) + 1, fence, f[8] or ''}
end

SPEC.bury = {keys = {'inflight', 'dead', 'deadmsg', 'stats'}, args = {'raw', 'entry_id', 'entry', 'dead_max', 'dead_age'},
             flags = 'allow-oom'}
-- A message that cannot become a job (malformed, unknown type, oversized) moves from the inflight list to the
-- dead set under its own entry id (msg-UUID), with its original bytes and the reason. It holds no key of a
-- job: no hash, no idempotency key, never a finished job's. Returns 'ok', or 'gone' if no longer held.
OPS.bury = function(k, a)
  if redis.call('LREM', k.inflight, -1, a.raw) == 0 then return 'gone' end
  dead_add(k, a.entry_id, a.entry, clock(), a.dead_max, a.dead_age)
  redis.call('HINCRBY', k.stats, 'dead', '1')
  return 'ok'
end

SPEC.ack = {keys = {'inflight'}, args = {'raw'}, flags = 'allow-oom'}
-- Drops a message from the inflight list: a second copy of a job this node holds already.
OPS.ack = function(k, a)
  return redis.call('LREM', k.inflight, -1, a.raw)
end
