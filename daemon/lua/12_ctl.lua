-- The control socket's writes and multi-key reads (daemon/ctl_ops.c; schema/control-protocol.md). Each is
-- one atomic step, so a client never sees half a submit, and an owner check never races the write it
-- guards. Owner checks: a = '1' means the caller has admin; otherwise the job's owner must equal the caller's,
-- and a job of another owner answers exactly like a missing one ('not_found').

local function visible(h, owner, admin)
  if admin == '1' then return true end
  local o = redis.call('HGET', h, 'owner')
  return o ~= false and o == owner
end

-- hopper_ctl_submit(prefix, now, ttl, max_events, n, {id, queue, type, max_attempts, created_at, owner,
--                   idem, run_at, payload} * n)
-- All or nothing: if any id already has a job hash, nothing is written and {'conflict', id} comes back.
-- A job whose idempotency_key is held by an existing job (or by an earlier job of the batch) is not written:
-- the submission returns the existing run. Every other job's hash is written queued (as hopper's clients
-- do), its key taken, its queued event emitted, and the job pushed to its queue (or its scheduled set when
-- run_at is in the future). Returns {'ok', index, holder_id, holder_state, ...} with one triple per job
-- answered by an existing run (index counts from 0), or {'idem_conflict', key} when the key's holder
-- belongs to another owner (nothing written, and that run's id is not revealed).
OPS.ctl_submit = function(a)
  local p, now, ttl, max_events, n = a[1], a[2], a[3], a[4], tonumber(a[5])
  local out, holders, skip = {'ok'}, {}, {}
  for k = 0, n - 1 do
    local id, idem = a[6 + k * 9], a[6 + k * 9 + 6]
    if redis.call('EXISTS', p .. 'job:' .. id) == 1 then return {'conflict', id} end
    if idem ~= '' then
      local holder, st = holders[idem], 'queued'
      if not holder then
        local g = redis.call('GET', p .. 'idem:' .. idem)
        if g and g ~= id and redis.call('EXISTS', p .. 'job:' .. g) == 1 then
          if redis.call('HGET', p .. 'job:' .. g, 'owner') ~= a[6 + k * 9 + 5] then
            return {'idem_conflict', idem} -- another owner's run: not shown to this caller
          end
          holder, st = g, redis.call('HGET', p .. 'job:' .. g, 'state')
        end
      end
      if holder then
        out[#out + 1] = tostring(k)
        out[#out + 1] = holder
        out[#out + 1] = st
        skip[k] = true
      else
        holders[idem] = id
      end
    end
  end
  for k = 0, n - 1 do
    local b = 6 + k * 9
    local id, q, typ, ma, created, owner, idem, run_at, payload =
      a[b], a[b + 1], a[b + 2], a[b + 3], a[b + 4], a[b + 5], a[b + 6], a[b + 7], a[b + 8]
    if not skip[k] then
      local h = p .. 'job:' .. id
      redis.call('HSET', h, 'id', id, 'type', typ, 'queue', q, 'state', 'queued', 'attempt', '0', 'max_attempts', ma,
                 'progress', '0', 'created_at', created, 'enqueued_at', now, 'updated_at', now, 'payload', payload,
                 'stalls', '0', 'owner', owner)
      if idem ~= '' then
        redis.call('HSET', h, 'idempotency_key', idem)
        redis.call('SET', p .. 'idem:' .. idem, id, 'EX', ttl)
      end
      emit(p, id, event_json(id, 'state', 'queued', '0', '0', now), max_events, ttl, false)
      if tonumber(run_at) > tonumber(now) then
        redis.call('HSET', h, 'run_at', run_at)
        redis.call('ZADD', p .. 'scheduled:' .. q, run_at, payload)
      else
        redis.call('LPUSH', p .. 'queue:' .. q, payload)
      end
      index_add(p, id, now, ttl)
      redis.call('SADD', p .. 'queues', q) -- known queues, for the queues op
    end
  end
  return out
end

-- hopper_ctl_cancel(prefix, id, now, owner, admin, ttl, max_events)
-- queued / retrying: written cancelled (terminal) and taken out of its queue list or scheduled set (a copy
-- a daemon already fetched is dropped by its claim or run, which see the terminal state). running: written
-- cancelled too, and a cancel published on P control for the daemon running it to stop the worker.
-- Returns {'ok', previous_state}, {'not_found'} or {'conflict', state}.
OPS.ctl_cancel = function(a)
  local p, id, now, owner, admin, ttl, max_events = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
  local h = p .. 'job:' .. id
  local st, attempt, progress = job_status(h)
  if not st or not visible(h, owner, admin) then return {'not_found'} end
  if TERMINAL[st] then return {'conflict', st} end
  local f = redis.call('HMGET', h, 'queue', 'payload', 'node')
  finish_terminal(p, id, 'cancelled', now, 'cancelled by ' .. owner, max_events, ttl, attempt, progress)
  CELERY.finish(p, id, 'cancelled', nil, 'cancelled by ' .. owner, now) -- a Celery task reads REVOKED
  if f[1] and f[2] then
    redis.call('ZREM', p .. 'scheduled:' .. f[1], f[2])
    redis.call('LREM', p .. 'queue:' .. f[1], 1, f[2])
  end
  if st == 'running' or st == 'queued' then
    -- Also for queued: a daemon may hold it claimed, waiting for a worker.
    redis.call('PUBLISH', p .. 'control', cjson.encode({op = 'cancel', job = id, node = f[3] or ''}))
  end
  return {'ok', st}
end

-- hopper_ctl_retry(prefix, id, now, owner, admin, ttl, max_events)
-- A failed or dead job goes back to the head of its queue with its original payload and a fresh attempt
-- count; its dead-list entries go. Returns {'ok', queue}, {'not_found'} or {'conflict', state}.
OPS.ctl_retry = function(a)
  local p, id, now, owner, admin, ttl, max_events = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
  local h = p .. 'job:' .. id
  local st = redis.call('HGET', h, 'state')
  if not st or not visible(h, owner, admin) then return {'not_found'} end
  if st ~= 'failed' and st ~= 'dead' then return {'conflict', st} end
  local f = redis.call('HMGET', h, 'queue', 'payload')
  if not f[1] or not f[2] then return {'conflict', 'no payload kept'} end
  redis.call('HSET', h, 'state', 'queued', 'attempt', '0', 'progress', '0', 'stage', '', 'message', '',
             'enqueued_at', now, 'updated_at', now, 'stalls', '0')
  redis.call('HDEL', h, 'error', 'finished_at', 'result', 'run_at')
  redis.call('PERSIST', h)
  redis.call('PERSIST', h .. ':events')
  emit(p, id, event_json(id, 'state', 'queued', '0', '0', now), max_events, ttl, false)
  redis.call('RPUSH', p .. 'queue:' .. f[1], f[2])
  index_add(p, id, now, ttl)
  local dead = p .. 'dead'
  for _, e in ipairs(redis.call('LRANGE', dead, 0, -1)) do
    local ok, m = pcall(cjson.decode, e)
    if ok and type(m) == 'table' and m.id == id then redis.call('LREM', dead, 0, e) end
  end
  return {'ok', f[1]}
end

-- hopper_ctl_list(prefix, cursor_score, cursor_id, limit, state, queue, type, owner, scan_max, max_bytes)
-- Newest first from P jobs. The cursor is the (score, id) of the last job examined: the next page starts
-- just after it (ties in score ordered by id, as the sorted set orders them). Examines at most scan_max
-- index entries per call, so a selective filter returns short pages with a cursor rather than scanning
-- everything; a page also stops before max_bytes of JSON (it must fit a frame). Returns {next_score,
-- next_id, page}: page is one JSON array of summaries (objects of the hash's strings: one reply string,
-- not thousands of reply elements); next_score is '' at the end.
local SUMMARY = {'id', 'type', 'queue', 'state', 'owner', 'progress', 'attempt', 'enqueued_at', 'updated_at',
                 'error'}
OPS.ctl_list = function(a)
  local p, cscore, cid, limit = a[1], a[2], a[3], tonumber(a[4])
  local fstate, fqueue, ftype, fowner, scan_max, max_bytes = a[5], a[6], a[7], a[8], tonumber(a[9]), tonumber(a[10])
  local max = '+inf'
  if cscore ~= '' then max = cscore end
  local page = {}
  local found, examined, offset, bytes = 0, 0, 0, 2
  local last_score, last_id, ended, full = nil, nil, false, false
  while not full and found < limit and examined < scan_max do
    local batch = redis.call('ZREVRANGEBYSCORE', p .. 'jobs', max, '-inf', 'WITHSCORES', 'LIMIT', offset, 100)
    if #batch == 0 then ended = true; break end
    for i = 1, #batch, 2 do
      local id, score = batch[i], batch[i + 1]
      offset = offset + 1
      if not (cscore ~= '' and score == cscore and id >= cid) then
        local f = redis.call('HMGET', p .. 'job:' .. id, unpack(SUMMARY))
        if not f[4] then
          redis.call('ZREM', p .. 'jobs', id)
        elseif (fstate == '' or f[4] == fstate) and (fqueue == '' or f[3] == fqueue) and
               (ftype == '' or f[2] == ftype) and (fowner == '' or f[5] == fowner) then
          local s = {}
          for k = 1, #SUMMARY do
            if f[k] then s[SUMMARY[k]] = f[k] end
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
  if ended or not last_score then last_score, last_id = '', '' end
  return {last_score, last_id, '[' .. table.concat(page, ',') .. ']'}
end

-- hopper_ctl_pause(prefix, queue, '1' | '0'): adds or removes the queue in P paused (every daemon's fetch
-- skips paused queues) and tells every daemon on P control. Returns 1.
OPS.ctl_pause = function(a)
  local p, q, on = a[1], a[2], a[3]
  if on == '1' then redis.call('SADD', p .. 'paused', q) else redis.call('SREM', p .. 'paused', q) end
  redis.call('PUBLISH', p .. 'control', cjson.encode({op = 'pause', queue = q, paused = (on == '1')}))
  return 1
end

-- hopper_ctl_queues(prefix, queue...): for the queues given, every queue some daemon consumes, every
-- paused one and every queue the control socket submitted to (P queues): {name, length, scheduled, inflight, paused} flattened, five entries per queue.
OPS.ctl_queues = function(a)
  local p = a[1]
  local names, seen = {}, {}
  local function add(q) if not seen[q] then seen[q] = true; names[#names + 1] = q end end
  for i = 2, #a do add(a[i]) end
  local nodes = redis.call('SMEMBERS', p .. 'nodes')
  for _, n in ipairs(nodes) do
    for _, q in ipairs(redis.call('SMEMBERS', p .. 'node:' .. n .. ':queues')) do add(q) end
  end
  for _, q in ipairs(redis.call('SMEMBERS', p .. 'paused')) do add(q) end
  for _, q in ipairs(redis.call('SMEMBERS', p .. 'queues')) do add(q) end
  local out = {}
  for _, q in ipairs(names) do
    local infl = 0
    for _, n in ipairs(nodes) do infl = infl + redis.call('LLEN', p .. 'inflight:' .. n .. ':' .. q) end
    out[#out + 1] = q
    out[#out + 1] = redis.call('LLEN', p .. 'queue:' .. q)
    out[#out + 1] = redis.call('ZCARD', p .. 'scheduled:' .. q)
    out[#out + 1] = infl
    out[#out + 1] = redis.call('SISMEMBER', p .. 'paused', q)
  end
  return out
end

-- hopper_ctl_stats(prefix): {stats hash flat, {node hash flat}...} for every node whose heartbeat lives.
OPS.ctl_stats = function(a)
  local p = a[1]
  local out = {redis.call('HGETALL', p .. 'stats')}
  for _, n in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do
    local hb = redis.call('HGETALL', p .. 'node:' .. n)
    if #hb > 0 then out[#out + 1] = hb end
  end
  return out
end

-- hopper_ctl_paused(prefix): the paused queues (each daemon refreshes its copy once a tick).
OPS.ctl_paused = function(a)
  return redis.call('SMEMBERS', a[1] .. 'paused')
end
