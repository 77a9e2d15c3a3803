-- The control socket's writes and multi-key reads (daemon/ctl/ctl_ops.c; schema/control-protocol.md). Each is
-- one atomic step on one queue's keys (or the deployment-wide ones), so a client never sees half a submit,
-- and an owner check never races the write it guards. Owner checks: admin = '1' means the caller has admin;
-- otherwise the job's owner must equal the caller's, and a job of another owner answers exactly like a
-- missing one ('not_found').

local function visible(h, owner, admin)
  if admin == '1' then return true end
  local o = redis.call('HGET', h, 'owner')
  return o ~= false and o == owner
end

SPEC.ctl_submit = {keys = {'queue', 'scheduled', 'jobs', 'stats'}, vk = true, args = {'ttl', 'max_events', 'n'},
                   va = true}
-- Submits n jobs of one queue. Extra keys: per job its job, events, idem and flow keys; extra arguments: per
-- job id, type, max_attempts, created_at, owner, idem, run_at, payload, flow. All or nothing: if any id has a
-- hash already, nothing is written and {'conflict', id} comes back. A job whose idempotency_key or unique
-- lock (16_flow.lua) an existing job (or an earlier job of the batch) holds is not written: the reply names
-- that run. Every other job is admitted (job_create) and pushed to the queue, or to the scheduled set when
-- run_at (or its debounce) is ahead (Redis's clock). Returns {'ok', index, holder, holder_state, why, ...}
-- (index from 0; why: 'idempotency' or 'unique'). Idempotency keys and unique locks are per owner (hopperd
-- builds each job's keys from its owner, daemon/redis/rfunc.c): another owner's key is a free key.
OPS.ctl_submit = function(k, a, keys, args)
  local n, now = tonumber(a.n), clock()
  local out, holders, uholders, skip = {'ok'}, {}, {}, {}
  local function job(i)
    local b, c = i * 9, 5 + i * 4
    return {job = keys[c], events = keys[c + 1], idem = keys[c + 2], flow = keys[c + 3], jobs = k.jobs,
            stats = k.stats, scheduled = k.scheduled, queue = k.queue},
           {id = args[b + 1], type = args[b + 2], max_attempts = args[b + 3], created_at = args[b + 4],
            owner = args[b + 5], idem = args[b + 6], run_at = args[b + 7], payload = args[b + 8], flow = args[b + 9]}
  end
  for i = 0, n - 1 do
    local jk, ja = job(i)
    if redis.call('EXISTS', jk.job) == 1 then return {'conflict', ja.id} end
    if ja.idem ~= '' then
      local hk = ja.owner .. '\0' .. ja.idem -- per owner within the batch too (an admin may mix owners)
      local holder, st = holders[hk], 'queued'
      if not holder then
        local g = redis.call('GET', jk.idem)
        local gh = g and sibling_job(jk.job, g)
        if g and g ~= ja.id and redis.call('EXISTS', gh) == 1 then
          holder, st = g, redis.call('HGET', gh, 'state')
        end
      end
      if holder then
        out[#out + 1] = tostring(i)
        out[#out + 1] = holder
        out[#out + 1] = st
        out[#out + 1] = 'idempotency'
        skip[i] = 'idempotency'
      else
        holders[hk] = ja.id
      end
    end
    if not skip[i] and string.sub(ja.flow, 1, 1) == 'u' then
      local holder, st = uholders[jk.flow], 'queued'
      if not holder then
        local d = FLOW.duplicate(jk, ja)
        if d then holder, st = d[2], d[3] end
      end
      if holder then
        out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = tostring(i), holder, st, 'unique'
        skip[i] = 'unique'
      else
        uholders[jk.flow] = ja.id
      end
    end
  end
  for i = 0, n - 1 do
    if not skip[i] then
      local jk, ja = job(i)
      admit_push(jk, ja, now, a.ttl, a.max_events)
    elseif skip[i] == 'unique' then
      redis.call('HINCRBY', k.stats, 'unique_duplicates', 1)
    end
  end
  return out
end

SPEC.ctl_cancel = {keys = {'job', 'events', 'queue', 'scheduled', 'stats'},
                   args = {'id', 'owner', 'admin', 'ttl', 'max_events', 'channel'}, flags = 'allow-oom'}
-- queued / retrying: written cancelled (terminal) and taken out of its queue list or scheduled set (a copy a
-- daemon already fetched is dropped by its claim or run, which see the terminal state). running: written
-- cancelled too, and a cancel published on the control channel for the daemon running it (which also
-- re-reads its held jobs after every resubscribe, so the cancel arrives even if this message is lost).
-- Returns {'ok', previous_state, evwait, owner} (evwait: the event key a workflow run waits for, '' for
-- none: hopperd then takes the run off its waiters, 20_events.lua), {'not_found'} or {'conflict', state}.
OPS.ctl_cancel = function(k, a)
  local st, attempt, progress = job_status(k.job)
  if not st or not visible(k.job, a.owner, a.admin) then return {'not_found'} end
  if TERMINAL[st] then return {'conflict', st} end
  local f = redis.call('HMGET', k.job, 'payload', 'node', 'evwait', 'owner')
  local now = clock()
  finish_terminal(k, a.id, 'cancelled', now, 'cancelled by ' .. a.owner, a.max_events, a.ttl, attempt, progress)
  CELERY.finish(k, a.id, 'cancelled', nil, 'cancelled by ' .. a.owner, now) -- a Celery task reads REVOKED
  if f[1] then
    redis.call('ZREM', k.scheduled, f[1])
    redis.call('LREM', k.queue, 1, f[1])
  end
  if st == 'running' or st == 'queued' then
    redis.call('PUBLISH', a.channel, cjson.encode({op = 'cancel', job = a.id, queue = key_tag(k.job), node = f[2] or ''}))
  end
  return {'ok', st, f[3] or '', f[4] or ''}
end

SPEC.ctl_retry = {keys = {'job', 'events', 'queue', 'dead', 'deadmsg', 'jobs'},
                  args = {'id', 'owner', 'admin', 'ttl', 'max_events'}}
-- A failed or dead job goes back to the head of its queue with its stored payload and a fresh attempt count;
-- its dead entry goes (one ZREM and one HDEL: O(log n) in the size of the dead set). A unique job takes its
-- lock again (FLOW.retake); while another live job holds it the retry is refused: {'held', holder}.
-- Returns {'ok', queue}, {'not_found'}, {'held', holder} or {'conflict', state}.
-- The requeue both a retry and a workflow restart end with: the job, ended (payload its stored message),
-- goes back to the head of its queue as a fresh job of the same id; its dead entry goes.
local function requeue_ended(k, a, payload)
  local now = clock()
  redis.call('HSET', k.job, 'state', 'queued', 'attempt', '0', 'progress', '0', 'stage', '', 'message', '',
             'enqueued_at', now, 'updated_at', now, 'stalls', '0', 'inc', '')
  redis.call('HDEL', k.job, 'error', 'finished_at', 'result', 'run_at')
  redis.call('PERSIST', k.job)
  redis.call('PERSIST', k.events)
  emit(k, event_json(a.id, 'state', 'queued', '0', '0', now), a.max_events, a.ttl, false)
  redis.call('RPUSH', k.queue, payload)
  index_add(k, a.id, now, a.ttl)
  redis.call('ZREM', k.dead, a.id)
  redis.call('HDEL', k.deadmsg, a.id)
end

OPS.ctl_retry = function(k, a)
  local st = redis.call('HGET', k.job, 'state')
  if not st or not visible(k.job, a.owner, a.admin) then return {'not_found'} end
  if st ~= 'failed' and st ~= 'dead' then return {'conflict', st} end
  local payload, fl = unpack(redis.call('HMGET', k.job, 'payload', 'flow'))
  if not payload then return {'conflict', 'no payload kept'} end
  local holder = fl and FLOW.retake(a.id, k.job, fl)
  if holder then return {'held', holder} end
  requeue_ended(k, a, payload)
  return {'ok', key_tag(k.job)}
end

SPEC.ctl_list = {keys = {'jobs'}, args = {'tag', 'score', 'cursor_id', 'limit', 'state', 'type', 'owner', 'scan_max',
                                            'max_bytes'}, flags = 'no-writes'}
-- One queue's jobs, newest first from its index. The cursor is the (score, id) of the last job examined: the
-- page starts just after it. Examines at most scan_max entries; stops before max_bytes of JSON. Reads the
-- hashes of the index's members (same tag, same slot: keys named by the index, the one read that is not
-- declared; tag is "P{Q}:job:"). Returns {next_score, next_id, page, ended}: page is a JSON array of
-- summaries (objects of the hash's strings) each with "_score"; next_score is '' when nothing was examined.
local SUMMARY = {'id', 'type', 'queue', 'state', 'owner', 'progress', 'attempt', 'enqueued_at', 'updated_at',
                 'error'}
OPS.ctl_list = function(k, a)
  local cscore, cid, limit = a.score, a.cursor_id, tonumber(a.limit)
  local scan_max, max_bytes = tonumber(a.scan_max), tonumber(a.max_bytes)
  local max = '+inf'
  if cscore ~= '' then max = cscore end
  local page = {}
  local found, examined, offset, bytes = 0, 0, 0, 2
  local last_score, last_id, ended, full = nil, nil, false, false
  while not full and found < limit and examined < scan_max do
    local batch = redis.call('ZREVRANGEBYSCORE', k.jobs, max, '-inf', 'WITHSCORES', 'LIMIT', offset, 100)
    if #batch == 0 then ended = true; break end
    for i = 1, #batch, 2 do
      local id, score = batch[i], batch[i + 1]
      offset = offset + 1
      if not (cscore ~= '' and tonumber(score) == tonumber(cscore) and id >= cid) then
        local f = redis.call('HMGET', a.tag .. id, unpack(SUMMARY))
        if f[4] and (a.state == '' or f[4] == a.state) and (a.type == '' or f[2] == a.type) and
           (a.owner == '' or f[5] == a.owner) then
          local s = {_score = score}
          for j = 1, #SUMMARY do
            if f[j] then s[SUMMARY[j]] = f[j] end
          end
          local enc = cjson.encode(s)
          if found > 0 and bytes + #enc + 1 > max_bytes then full = true; break end
          page[#page + 1] = enc
          bytes = bytes + #enc + 1
          found = found + 1
        end
        examined = examined + 1
        last_score, last_id = score, id
        if found >= limit or examined >= scan_max then break end
      end
    end
  end
  if not last_score then last_score, last_id = '', '' end
  return {last_score, last_id, '[' .. table.concat(page, ',') .. ']', ended and 1 or 0}
end

SPEC.ctl_pause = {keys = {'paused'}, args = {'on'}, flags = 'allow-oom'}
-- The queue's own pause flag, which its fetch and claim read.
OPS.ctl_pause = function(k, a)
  if a.on == '1' then redis.call('SET', k.paused, '1') else redis.call('DEL', k.paused) end
  return 1
end

SPEC.ctl_pause_g = {keys = {'g_paused'}, args = {'queue', 'on', 'channel'}, flags = 'allow-oom'}
-- The deployment-wide list of paused queues (for listing), and the notice to every daemon.
OPS.ctl_pause_g = function(k, a)
  if a.on == '1' then redis.call('SADD', k.g_paused, a.queue) else redis.call('SREM', k.g_paused, a.queue) end
  redis.call('PUBLISH', a.channel, cjson.encode({op = 'pause', queue = a.queue, paused = (a.on == '1')}))
  return 1
end

SPEC.ctl_queues = {keys = {'queue', 'scheduled', 'paused', 'dead'}, vk = true, args = {}, flags = 'no-writes'}
-- One queue's figures: {length, scheduled, inflight (over the inflight lists given as extra keys), paused,
-- oldest_age_s, dead, concurrency_waiting, rate_limited}: the last two count jobs waiting for a slot of a
-- concurrency key and jobs holding a reserved rate-limit token (17_limits.lua); oldest_age_s is the age in seconds of the message taken next (the right end, the
-- oldest pushed) from its created_at, '' when the queue is empty or that message carries no usable
-- created_at; dead is the number of entries in the queue's dead set now.
OPS.ctl_queues = function(k, a, keys)
  local infl = 0
  for i = 5, #keys do infl = infl + redis.call('LLEN', keys[i]) end
  local age, oldest = '', redis.call('LINDEX', k.queue, -1)
  if oldest then
    local ok, m = pcall(cjson.decode, oldest)
    local c = ok and type(m) == 'table' and m.created_at
    if type(c) == 'number' and c >= 0 and c < 1e11 then
      age = string.format('%.3f', math.max(0, tonumber(clock()) - c))
    end
  end
  local ccw, rlw = LIMITS.waiting(k.queue)
  return {redis.call('LLEN', k.queue), redis.call('ZCARD', k.scheduled), infl, redis.call('EXISTS', k.paused), age,
          redis.call('ZCARD', k.dead), ccw, rlw}
end

SPEC.ctl_counters = {keys = {'stats', 'dead'}, args = {}, flags = 'no-writes'}
-- One queue's counters (flat) and the size of its dead set.
OPS.ctl_counters = function(k, a)
  return {redis.call('HGETALL', k.stats), redis.call('ZCARD', k.dead)}
end

SPEC.ctl_nodes = {keys = {'g_hb', 'g_seen'}, args = {'lease_ms'}, flags = 'no-writes'}
-- The heartbeat JSON of every node heard from within a lease.
OPS.ctl_nodes = function(k, a)
  local now, out = clock_ms(), {}
  local seen = redis.call('HGETALL', k.g_seen)
  for i = 1, #seen, 2 do
    if now - tonumber(seen[i + 1]) <= tonumber(a.lease_ms) then
      out[#out + 1] = redis.call('HGET', k.g_hb, seen[i]) or '{}'
    end
  end
  return out
end

SPEC.ctl_state = {keys = {'g_paused', 'g_queues', 'g_seen'}, args = {}, flags = 'no-writes'}
-- What each daemon refreshes once a tick: {paused queues, known queues, node ids}.
OPS.ctl_state = function(k, a)
  return {redis.call('SMEMBERS', k.g_paused), redis.call('SMEMBERS', k.g_queues), redis.call('HKEYS', k.g_seen)}
end
