-- Celery compatibility (see daemon/celery.c and README "Celery compatibility"). Celery messages are taken
-- from kombu's Redis lists into this node's list P{@}:celery:inflight:NODE (entries "queue\nmessage"), turned
-- into hopper jobs by hopperd (C), and enqueued by celery_enqueue, which removes the raw entry in the same
-- step: a message is always in exactly one place. A Celery-sourced job hash carries celery_key (its
-- result-backend key), celery_rexp (result expiry), celery_track (write STARTED), celery_expires and
-- celery (JSON: the messages to publish on success/failure, prepared by hopperd, and the chain's task ids);
-- the run, progress, finish and claim operations call the CELERY hooks below, so a result-backend write is
-- atomic with the hopper state change it reports. Not ready for Redis Cluster yet (#14): kombu's lists and
-- result keys, other nodes' Celery inflight lists and the hopper queue lengths celery_take reads are named
-- here from arguments, and celery_enqueue / celery_refuse touch the {@} inflight list and one queue's keys.

local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2 = math.floor(n / 262144) % 64, math.floor(n / 4096) % 64
    local c3, c4 = math.floor(n / 64) % 64, n % 64
    out[#out + 1] = B64:sub(c1 + 1, c1 + 1) .. B64:sub(c2 + 1, c2 + 1) ..
                    (b and B64:sub(c3 + 1, c3 + 1) or '=') .. (c and B64:sub(c4 + 1, c4 + 1) or '=')
  end
  return table.concat(out)
end

-- Unix seconds (decimal string) -> Celery's date_done, "YYYY-MM-DDTHH:MM:SS.ffffff" (UTC, no zone).
local function iso(now)
  local t = tonumber(now)
  local secs = math.floor(t)
  local usec = math.floor((t - secs) * 1e6)
  local z = math.floor(secs / 86400) + 719468
  local rem = secs % 86400
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%06d', y, m, d, math.floor(rem / 3600),
                       math.floor(rem / 60) % 60, rem % 60, usec)
end

-- A result-backend value. result is JSON text; ready states get date_done.
local function meta(status, result, traceback, id, now)
  local done = 'null'
  if now then done = '"' .. iso(now) .. '"' end
  local tb = 'null'
  if traceback then tb = cjson.encode(traceback) end
  return '{"status": "' .. status .. '", "result": ' .. result .. ', "traceback": ' .. tb ..
         ', "children": [], "date_done": ' .. done .. ', "task_id": ' .. cjson.encode(id) .. '}'
end

-- SETEX (or SET when rexp is 0) then PUBLISH on the same name, as Celery's Redis backend does; a stored
-- SUCCESS is never overwritten. Returns 1 if written.
local function store(key, rexp, value)
  local old = redis.call('GET', key)
  if old then
    local ok, m = pcall(cjson.decode, old)
    if ok and type(m) == 'table' and m.status == 'SUCCESS' then return 0 end
  end
  if tonumber(rexp) > 0 then redis.call('SETEX', key, rexp, value) else redis.call('SET', key, value) end
  redis.call('PUBLISH', key, value)
  return 1
end

local function exc(typ, module, msg)
  return cjson.encode({exc_type = typ, exc_message = {msg}, exc_module = module})
end

-- Publishes one prepared message (see celery_encoded in common/celery_msg.h), with result spliced in.
local function publish(bprefix, e, result)
  local body = e.bp
  if e.ins == 1 then
    body = body .. result
    if e.c == 1 then body = body .. ',' end
  end
  body = body .. e.bs
  redis.call('LPUSH', bprefix .. e.k, e.ep .. b64(body) .. e.es)
end

-- Celery v2: a chord header member's end, as Celery's Redis backend does it (on_chord_part_return,
-- celery/backends/redis.py): [1, id, state, result] joins the zset celery-taskset-meta-GID.j (score: the
-- member's group_index); once it holds .s (the chord size the client set) plus .t entries, the body is
-- published with the results in group order as its first argument, or, if a member did not succeed, the
-- body's result is FAILURE (ChordError). A body hopperd cannot publish or a header saved as a GroupResult
-- (nested groups) end in a ChordError too, never a silent hang. c is side.chord.
local function chord_fail(side, c, rexp, now, msg)
  local v = exc('ChordError', 'celery.exceptions', msg)
  store(side.rp .. 'celery-task-meta-' .. c.bid, rexp, meta('FAILURE', v, nil, c.bid, now))
  for _, mid in ipairs(c.more or {}) do -- the members of a group body
    store(side.rp .. 'celery-task-meta-' .. mid, rexp, meta('FAILURE', v, nil, mid, now))
  end
end

local function chord_part(side, id, status, result, rexp, now)
  local c = side.chord
  if not c then return end
  local base = side.rp .. 'celery-taskset-meta-' .. c.gid
  local jkey, tkey, skey = base .. '.j', base .. '.t', base .. '.s'
  local score = '+inf'
  if c.gidx >= 0 then score = c.gidx end
  redis.call('ZADD', jkey, score, '[1, ' .. cjson.encode(id) .. ', "' .. status .. '", ' .. result .. ']')
  local ready, size, diff = redis.call('ZCARD', jkey), redis.call('GET', skey), redis.call('GET', tkey)
  if tonumber(rexp) > 0 then
    for _, k in ipairs({jkey, tkey, skey}) do redis.call('EXPIRE', k, rexp) end
  end
  -- The client sets .s just before it sends the last member, so an earlier member may end first: it only
  -- counts, and the last one (which always sees .s) completes the chord, as with Celery's worker.
  if not size then return end
  if ready < tonumber(size) + tonumber(diff or '0') then return end
  local results = redis.call('ZRANGE', jkey, 0, -1)
  redis.call('DEL', jkey, tkey, skey)
  if redis.call('EXISTS', base) == 1 then
    chord_fail(side, c, rexp, now, 'hopperd: a chord header saved as a GroupResult (nested groups) is not supported')
    return
  end
  if c.unsupported then
    chord_fail(side, c, rexp, now, c.unsupported)
    return
  end
  local vals = {}
  for _, e in ipairs(results) do
    -- the exact text json.dumps([1, tid, state, result]) writes, by hopperd or by a Celery worker
    local tid, st, val = e:match('^%[1, "([^"]*)", "(%u+)", (.*)%]$')
    if not st then
      chord_fail(side, c, rexp, now, 'hopperd: unreadable chord entry ' .. e:sub(1, 80))
      return
    end
    if st ~= 'SUCCESS' then
      chord_fail(side, c, rexp, now, 'Dependency ' .. tid .. ' raised ' .. st)
      return
    end
    vals[#vals + 1] = val
  end
  publish(side.bp or '', c.body, '[' .. table.concat(vals, ', ') .. ']')
end

-- Celery v2: the exception a failure is reported as. A Celery soft time limit (side.soft) that hit is
-- SoftTimeLimitExceeded; else the task's celery_types rules side.excs = {{prefix, type, module}, ...}:
-- the first whose non-empty prefix starts the error, else the one with prefix '', else HopperJobError.
local function failure_exc(side, err)
  err = err or ''
  if side.soft == 1 and err:sub(1, 15) == 'timed out after' then
    return exc('SoftTimeLimitExceeded', 'celery.exceptions', err)
  end
  local def = nil
  for _, r in ipairs(side.excs or {}) do
    if r[1] == '' then
      def = def or r
    elseif err:sub(1, #r[1]) == r[1] then
      return exc(r[2], r[3], err)
    end
  end
  if def then return exc(def[2], def[3], err) end
  return exc('HopperJobError', 'hopper', err)
end

-- The finish hook: the Celery view of a hopper outcome, and what the task's embed asks for next.
CELERY.finish = function(k, id, outcome, result, err, now)
  local h = k.job
  local f = redis.call('HMGET', h, 'celery_key', 'celery_rexp', 'celery', 'attempt', 'node')
  if not f[1] then return end
  local key, rexp = f[1], f[2] or '86400'
  local side = {}
  if f[3] then side = cjson.decode(f[3]) end
  local tb = 'hopper job ' .. id .. ' (attempt ' .. (f[4] or '?') .. ' on node ' .. (f[5] or '?') .. '): ' ..
             (err or '')
  if outcome == 'succeeded' then
    if result == nil or result == '' then result = 'null' end
    if store(key, rexp, meta('SUCCESS', result, nil, id, now)) == 1 then
      for _, e in ipairs(side.ok or {}) do publish(side.bp or '', e, result) end
      chord_part(side, id, 'SUCCESS', result, rexp, now)
    end
  elseif outcome == 'failed' or outcome == 'dead' then
    local v = failure_exc(side, err)
    store(key, rexp, meta('FAILURE', v, tb, id, now))
    chord_part(side, id, 'FAILURE', v, rexp, now)
    for _, cid in ipairs(side.chain_ids or {}) do
      store(side.rp .. 'celery-task-meta-' .. cid, rexp, meta('FAILURE', v, tb, cid, now))
    end
    for _, e in ipairs(side.err or {}) do publish(side.bp or '', e, nil) end
  elseif outcome == 'cancelled' then
    local v = exc('TaskRevokedError', 'celery.exceptions', err)
    store(key, rexp, meta('REVOKED', v, nil, id, now))
    chord_part(side, id, 'REVOKED', v, rexp, now)
  elseif outcome == 'retrying' then
    store(key, rexp, meta('RETRY', exc('HopperJobError', 'hopper', err), tb, id, nil))
  end
end

CELERY.run = function(k, id, node, pid)
  local f = redis.call('HMGET', k.job, 'celery_key', 'celery_rexp', 'celery_track')
  if not f[1] or f[3] ~= '1' then return end
  store(f[1], f[2], meta('STARTED', '{"pid": ' .. pid .. ', "hostname": ' .. cjson.encode(node) .. '}', nil, id,
                         nil))
end

CELERY.progress = function(k, id, pr, stage, msg)
  local f = redis.call('HMGET', k.job, 'celery_key', 'celery_rexp', 'celery_prog')
  if not f[1] then return end
  local v
  if f[3] then -- Celery v2: the task's progress template (celery_types), names marked \1NAME\1 by hopperd
    local vals = {progress = pr, stage = cjson.encode(stage or ''), message = cjson.encode(msg or '')}
    v = f[3]:gsub('\1(%a+)\1', vals)
  else
    v = '{"progress": ' .. pr .. ', "stage": ' .. cjson.encode(stage) .. ', "message": ' .. cjson.encode(msg) .. '}'
  end
  store(f[1], f[2], meta('PROGRESS', v, nil, id, nil))
end

-- The claim hook: a Celery task past its expiry is not run; it ends cancelled and is reported REVOKED.
CELERY.expired = function(k, now)
  local e = redis.call('HGET', k.job, 'celery_expires')
  return e ~= false and e ~= nil and tonumber(e) < tonumber(now)
end

SPEC.celery_take = {keys = {'g_cinflight', 'g_cnodes', 'g_seen'},
                    args = {'prefix', 'node', 'window', 'recover', 'celery_prefix', 'lease_ms'}, va = true}
-- celery_take (extra arguments: the Celery queues): moves messages from the Celery queues' priority lists into
-- this node's inflight list, bucket-major across queues (every queue's bucket 0, then bucket 3, ...; kombu's
-- BRPOP order), taking from the right (kombu LPUSHes). A queue whose hopper queue already holds window jobs is
-- skipped, so Celery's priority order decides what runs next. Also adopts the inflight entries of nodes that
-- were reaped (gone from P{@}:seen) and, with recover = '1', returns this node's own entries (a lost reply or a
-- previous life). Returns {more, entry...}: more is 1 when a window was full while its Celery lists still held
-- messages.
OPS.celery_take = function(k, a, keys, queues)
  local p, window, kp = a.prefix, tonumber(a.window), a.celery_prefix
  local infl = k.g_cinflight
  local out = {0}
  if a.recover == '1' then
    for _, v in ipairs(redis.call('LRANGE', infl, 0, window * 4)) do out[#out + 1] = v end
  end
  redis.call('SADD', k.g_cnodes, a.node)
  for _, n in ipairs(redis.call('SMEMBERS', k.g_cnodes)) do
    if n ~= a.node and not redis.call('HGET', k.g_seen, n) then
      local src = p .. '{@}:celery:inflight:' .. n
      while true do
        local v = redis.call('LMOVE', src, infl, 'RIGHT', 'LEFT')
        if not v then break end
        out[#out + 1] = v
      end
      redis.call('SREM', k.g_cnodes, n)
    end
  end
  local room = {}
  for i = 1, #queues do room[i] = window - redis.call('LLEN', p .. '{' .. queues[i] .. '}:queue') end
  for _, bucket in ipairs({'', '\6\0223', '\6\0226', '\6\0229'}) do
    for i = 1, #queues do
      local src = kp .. queues[i] .. bucket
      if room[i] <= 0 and out[1] == 0 and redis.call('LLEN', src) > 0 then out[1] = 1 end
      while room[i] > 0 do
        local v = redis.call('RPOP', src)
        if not v then break end
        v = queues[i] .. '\n' .. v
        redis.call('LPUSH', infl, v)
        out[#out + 1] = v
        room[i] = room[i] - 1
      end
    end
  end
  return out
end

SPEC.celery_enqueue = {keys = {'g_cinflight', 'queue', 'scheduled', 'job', 'events', 'idem', 'jobs', 'stats',
                                'g_crevoked'},
                       args = {'entry', 'id', 'type', 'max_attempts', 'payload', 'run_at', 'ttl', 'max_events',
                               'result_key', 'result_expires', 'track_started', 'expires', 'side', 'progress'}}
-- The converted job enters hopper (admitted by job_create, then its queue, or the scheduled set when run_at is
-- ahead: an ETA task waits in Redis) and the raw entry leaves the inflight list, in one step. A task id hopper
-- already knows (a redelivery) is only acknowledged; a revoked id (P{@}:celery:revoked) ends cancelled
-- (REVOKED) at once. progress is the task's PROGRESS template ('' = none). Returns 1 (enqueued), 2 (known:
-- dropped), 3 (revoked) or 0 (no longer held).
OPS.celery_enqueue = function(k, a)
  if redis.call('LREM', k.g_cinflight, -1, a.entry) == 0 then return 0 end
  local now = clock()
  local r = job_create(k, {id = a.id, type = a.type, max_attempts = a.max_attempts, created_at = '', owner = '',
                           idem = '', payload = a.payload}, now, a.ttl, a.max_events, false)
  if r[1] ~= 'created' then return 2 end
  redis.call('HSET', k.job, 'celery_key', a.result_key, 'celery_rexp', a.result_expires, 'celery_track',
             a.track_started, 'celery', a.side)
  if a.expires ~= '' then redis.call('HSET', k.job, 'celery_expires', a.expires) end
  if a.progress ~= '' then redis.call('HSET', k.job, 'celery_prog', a.progress) end -- Celery v2: PROGRESS template
  -- Celery v2: a task revoked (remote control) before hopperd took it never runs; Celery reads REVOKED.
  if redis.call('ZSCORE', k.g_crevoked, a.id) then
    finish_terminal(k, a.id, 'cancelled', now, 'revoked', a.max_events, a.ttl, '0', '0')
    CELERY.finish(k, a.id, 'cancelled', nil, 'revoked', now)
    return 3
  end
  if tonumber(a.run_at) > tonumber(now) then
    redis.call('HSET', k.job, 'run_at', a.run_at)
    redis.call('ZADD', k.scheduled, a.run_at, a.payload)
  else
    redis.call('LPUSH', k.queue, a.payload)
  end
  return 1
end

SPEC.celery_refuse = {keys = {'g_cinflight', 'job', 'events', 'idem', 'jobs', 'stats', 'dead', 'deadmsg'},
                      args = {'entry', 'id', 'task', 'state', 'error', 'result_key', 'result_expires', 'status',
                              'result', 'ttl', 'max_events', 'entry_id', 'dead_entry', 'dead_max', 'dead_age',
                              'payload', 'side'},
                      flags = 'allow-oom'}
-- A Celery message that will not run (refused content type, malformed, unknown task, expired) leaves the
-- inflight list; state dead adds its dead entry. With a task id hopper does not know yet it becomes a job
-- (job_create) ended in state (dead or cancelled); an existing job's hash is never touched. Its Celery result
-- says status (FAILURE or REVOKED); side ('' or {bp, rp, chord}) counts a chord member in its chord.
OPS.celery_refuse = function(k, a)
  if redis.call('LREM', k.g_cinflight, -1, a.entry) == 0 then return 0 end
  local now = clock()
  if a.state == 'dead' then dead_add(k, a.entry_id, a.dead_entry, now, a.dead_max, a.dead_age) end
  if a.id == '' then
    redis.call('HINCRBY', k.stats, 'dead', '1')
    return 1
  end
  local r = job_create(k, {id = a.id, type = a.task, max_attempts = '1', created_at = '', owner = '', idem = '',
                           payload = a.payload}, now, a.ttl, a.max_events, false)
  if r[1] ~= 'created' then return 1 end
  finish_terminal(k, a.id, a.state, now, a.error, a.max_events, a.ttl, '0', '0')
  local tb = nil
  if a.status == 'FAILURE' then tb = 'hopperd refused Celery task ' .. a.id .. ': ' .. a.error end
  store(a.result_key, a.result_expires, meta(a.status, a.result, tb, a.id, now))
  if a.side ~= '' then -- Celery v2
    chord_part(cjson.decode(a.side), a.id, a.status, a.result, a.result_expires, now)
  end
  return 1
end

-- ---- Celery v2: remote control (daemon/celery/pidbox.c, schema/celery-control.md) ----
-- P{@}:celery:revoked is a sorted set (task id -> revoke time) shared by every daemon: bounded to max ids and
-- expires seconds, like a Celery worker's revoked LimitedSet (REVOKES_MAX, REVOKE_EXPIRES), and, being in
-- Redis, kept across restarts (a Celery worker needs --statedb for that). A revoke is two steps: celery_revoke
-- records the ids (tag {@}: later intake sees them), then celery_cancel, once per known queue (tag {Q}),
-- ends the tasks that queue already holds.

SPEC.celery_revoke = {keys = {'g_crevoked'}, args = {'max', 'expires'}, va = true}
-- Extra arguments: the ids. Each joins the revoked set, which is then trimmed. Returns the number of ids.
OPS.celery_revoke = function(k, a, _, ids)
  local now = clock()
  for _, id in ipairs(ids) do redis.call('ZADD', k.g_crevoked, now, id) end
  redis.call('ZREMRANGEBYSCORE', k.g_crevoked, '-inf', '(' .. (tonumber(now) - tonumber(a.expires)))
  local n = redis.call('ZCARD', k.g_crevoked)
  if n > tonumber(a.max) then redis.call('ZREMRANGEBYRANK', k.g_crevoked, 0, n - tonumber(a.max) - 1) end
  return #ids
end

SPEC.celery_cancel = {keys = {'job', 'events', 'queue', 'scheduled', 'stats'},
                      args = {'id', 'owner', 'terminate', 'ttl', 'max_events', 'channel'}, flags = 'allow-oom'}
-- A revoked Celery task of this queue still queued or retrying ends cancelled at once (REVOKED, never runs),
-- and with terminate = '1' a running one too (hopper's cancel, ctl_cancel: its daemon stops the worker,
-- SIGTERM then SIGKILL). A job that is not a Celery task, or not in this queue, is left alone. Returns 2 (a
-- running attempt stopped), 1 (a waiting task cancelled) or 0.
OPS.celery_cancel = function(k, a)
  local f = redis.call('HMGET', k.job, 'state', 'celery_key')
  local st = f[1]
  if not f[2] or not (st == 'queued' or st == 'retrying' or (st == 'running' and a.terminate == '1')) then
    return 0
  end
  OPS.ctl_cancel(k, {id = a.id, owner = a.owner, admin = '1', ttl = a.ttl, max_events = a.max_events,
                     channel = a.channel})
  if st == 'running' then return 2 end
  return 1
end

SPEC.celery_revoked = {keys = {'g_crevoked'}, args = {'expires'}, flags = 'no-writes'}
-- The revoked ids not yet expired (inspect revoked).
OPS.celery_revoked = function(k, a)
  return redis.call('ZRANGEBYSCORE', k.g_crevoked, tonumber(clock()) - tonumber(a.expires), '+inf')
end

SPEC.celery_reply = {keys = {}, args = {'celery_prefix', 'routing_key', 'envelope'}}
-- A remote-control reply goes where kombu's reply exchange would put it, the list RK.reply.celery.pidbox, only
-- while the caller's binding exists (a caller that stopped waiting removed it; kombu drops such replies too).
-- Both are kombu's keys, named from the arguments (see schema/redis-keys.md). Returns 1 if delivered.
OPS.celery_reply = function(k, a)
  local q = a.routing_key .. '.reply.celery.pidbox'
  if redis.call('SISMEMBER', a.celery_prefix .. '_kombu.binding.reply.celery.pidbox',
                a.routing_key .. '\6\22\6\22' .. q) == 0 then
    return 0
  end
  redis.call('LPUSH', a.celery_prefix .. q, a.envelope)
  return 1
end
