-- Celery compatibility (see daemon/celery.c and README "Celery compatibility"). Celery messages are taken
-- from kombu's Redis lists into this node's list P celery:inflight:NODE (entries "queue\nmessage"), turned
-- into hopper jobs by hopperd (C), and enqueued by celery_enqueue, which removes the raw entry in the same
-- step: a message is always in exactly one place. A Celery-sourced job hash carries celery_key (its
-- result-backend key), celery_rexp (result expiry), celery_track (write STARTED), celery_expires and
-- celery (JSON: the messages to publish on success/failure, prepared by hopperd, and the chain's task ids);
-- the run, progress, finish and claim operations call the CELERY hooks below, so a result-backend write is
-- atomic with the hopper state change it reports.

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
CELERY.finish = function(p, id, outcome, result, err, now)
  local h = p .. 'job:' .. id
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

CELERY.run = function(p, id, node, pid)
  local f = redis.call('HMGET', p .. 'job:' .. id, 'celery_key', 'celery_rexp', 'celery_track')
  if not f[1] or f[3] ~= '1' then return end
  store(f[1], f[2], meta('STARTED', '{"pid": ' .. pid .. ', "hostname": ' .. cjson.encode(node) .. '}', nil, id,
                         nil))
end

CELERY.progress = function(p, id, pr, stage, msg)
  local f = redis.call('HMGET', p .. 'job:' .. id, 'celery_key', 'celery_rexp', 'celery_prog')
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
CELERY.expired = function(p, id, now)
  local e = redis.call('HGET', p .. 'job:' .. id, 'celery_expires')
  return e ~= false and e ~= nil and tonumber(e) < tonumber(now)
end

-- celery_take(prefix, node, window, recover, celery_prefix, queue...):
-- moves messages from the Celery queues' priority lists into this node's inflight list, bucket-major
-- across queues (every queue's bucket 0, then bucket 3, ...; kombu's BRPOP order), taking from the right
-- (kombu LPUSHes). A queue whose hopper queue already holds window jobs is skipped, so Celery's priority
-- order decides what runs next. Also adopts the inflight entries of nodes whose heartbeat expired and,
-- with recover = '1', returns this node's own entries (a lost reply or a previous life). Returns
-- {more, entry...}: more is 1 when a window was full while its Celery lists still held messages.
OPS.celery_take = function(a)
  local p, node, window, recover, kp = a[1], a[2], tonumber(a[3]), a[4], a[5]
  local infl = p .. 'celery:inflight:' .. node
  local out = {0}
  if recover == '1' then
    for _, v in ipairs(redis.call('LRANGE', infl, 0, window * 4)) do out[#out + 1] = v end
  end
  redis.call('SADD', p .. 'celery:nodes', node)
  for _, n in ipairs(redis.call('SMEMBERS', p .. 'celery:nodes')) do
    if n ~= node and redis.call('EXISTS', p .. 'node:' .. n) == 0 then
      local src = p .. 'celery:inflight:' .. n
      while true do
        local v = redis.call('LMOVE', src, infl, 'RIGHT', 'LEFT')
        if not v then break end
        out[#out + 1] = v
      end
      redis.call('SREM', p .. 'celery:nodes', n)
    end
  end
  local room = {}
  for i = 6, #a do room[i] = window - redis.call('LLEN', p .. 'queue:' .. a[i]) end
  for _, bucket in ipairs({'', '\6\0223', '\6\0226', '\6\0229'}) do
    for i = 6, #a do
      local src = kp .. a[i] .. bucket
      if room[i] <= 0 and out[1] == 0 and redis.call('LLEN', src) > 0 then out[1] = 1 end
      while room[i] > 0 do
        local v = redis.call('RPOP', src)
        if not v then break end
        v = a[i] .. '\n' .. v
        redis.call('LPUSH', infl, v)
        out[#out + 1] = v
        room[i] = room[i] - 1
      end
    end
  end
  return out
end

-- celery_enqueue(prefix, node, entry, id, queue, job, run_at, now, type, max_attempts, ttl, max_events,
--                result_key, result_expires, track_started, expires, side, progress_template):
-- the converted job enters hopper (its queue, or the scheduled set when run_at is ahead: an ETA task waits
-- in Redis) and the raw entry leaves the inflight list, in one step. A task id hopper already knows (a
-- redelivery) is only acknowledged; a revoked id ends cancelled (REVOKED) at once. Returns 1 (enqueued),
-- 2 (known: dropped), 3 (revoked) or 0 (no longer held).
OPS.celery_enqueue = function(a)
  local p, node, entry, id, q, job, run_at, now = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
  local typ, max_attempts, ttl, max_events = a[9], a[10], a[11], a[12]
  if redis.call('LREM', p .. 'celery:inflight:' .. node, -1, entry) == 0 then return 0 end
  local h = p .. 'job:' .. id
  if redis.call('EXISTS', h) == 1 then return 2 end
  redis.call('HSET', h, 'id', id, 'type', typ, 'queue', q, 'state', 'queued', 'attempt', '0',
             'max_attempts', max_attempts, 'progress', '0', 'created_at', now, 'enqueued_at', now,
             'updated_at', now, 'payload', job, 'stalls', '0', 'celery_key', a[13], 'celery_rexp', a[14],
             'celery_track', a[15], 'celery', a[17])
  if a[16] ~= '' then redis.call('HSET', h, 'celery_expires', a[16]) end
  if a[18] and a[18] ~= '' then redis.call('HSET', h, 'celery_prog', a[18]) end -- Celery v2: PROGRESS template
  -- Celery v2: a task revoked (remote control) before hopperd took it never runs; Celery reads REVOKED.
  if redis.call('ZSCORE', p .. 'celery:revoked', id) then
    finish_terminal(p, id, 'cancelled', now, 'revoked', max_events, ttl, '0', '0')
    CELERY.finish(p, id, 'cancelled', nil, 'revoked', now)
    return 3
  end
  emit(p, id, event_json(id, 'state', 'queued', '0', '0', now), max_events, ttl, false)
  if tonumber(run_at) > tonumber(now) then
    redis.call('HSET', h, 'run_at', run_at)
    redis.call('ZADD', p .. 'scheduled:' .. q, run_at, job)
  else
    redis.call('LPUSH', p .. 'queue:' .. q, job)
  end
  return 1
end

-- celery_refuse(prefix, node, entry, id, queue, task, now, state, error, result_key, result_expires, status,
--               result, ttl, max_events, dead_entry, side): a Celery message that will not run (refused content
-- type, malformed, unknown task, expired) leaves the inflight list; with an id it becomes a hopper job
-- ended in state (dead or cancelled) and its Celery result says status (FAILURE or REVOKED); side ('' or
-- {bp, rp, chord}) counts a chord member in its chord.
OPS.celery_refuse = function(a)
  local p, node, entry, id, q, task, now, state, err = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]
  local ttl, max_events, dead_entry = a[14], a[15], a[16]
  if redis.call('LREM', p .. 'celery:inflight:' .. node, -1, entry) == 0 then return 0 end
  if state == 'dead' then redis.call('LPUSH', p .. 'dead', dead_entry) end
  if id == '' then
    redis.call('HINCRBY', p .. 'stats', 'dead', '1')
    return 1
  end
  local h = p .. 'job:' .. id
  local st, attempt, progress = job_status(h)
  if st and TERMINAL[st] then return 1 end
  redis.call('HSET', h, 'id', id, 'type', task, 'queue', q, 'attempt', attempt, 'created_at', now)
  finish_terminal(p, id, state, now, err, max_events, ttl, attempt, progress)
  local tb = nil
  if a[12] == 'FAILURE' then tb = 'hopperd refused Celery task ' .. id .. ': ' .. err end
  store(a[10], a[11], meta(a[12], a[13], tb, id, now))
  if a[17] and a[17] ~= '' then chord_part(cjson.decode(a[17]), id, a[12], a[13], a[11], now) end -- Celery v2
  return 1
end

-- ---- Celery v2: remote control (daemon/celery/pidbox.c, schema/celery-control.md) ----
-- P celery:revoked is a sorted set (task id -> revoke time) shared by every daemon: bounded to max ids and
-- expires seconds, like a Celery worker's revoked LimitedSet (REVOKES_MAX, REVOKE_EXPIRES), and, being in
-- Redis, kept across restarts (a Celery worker needs --statedb for that).
local function revoked_trim(p, now, max, expires)
  local k = p .. 'celery:revoked'
  redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. (tonumber(now) - tonumber(expires)))
  local n = redis.call('ZCARD', k)
  if n > tonumber(max) then redis.call('ZREMRANGEBYRANK', k, 0, n - tonumber(max) - 1) end
end

-- celery_revoke(prefix, now, max, expires, terminate, ttl, max_events, hostname, id...): each id joins the
-- revoked set; a Celery task still queued or retrying ends cancelled at once (REVOKED, never runs), and
-- with terminate = '1' a running one too (hopper's cancel: its daemon stops the worker, SIGTERM then
-- SIGKILL). Returns {terminate, id...}: the ids revoked or, with terminate, the running ones stopped.
OPS.celery_revoke = function(a)
  local p, now, max, expires, terminate, ttl, max_events, host = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
  local out = {tonumber(terminate)}
  for i = 9, #a do
    local id = a[i]
    redis.call('ZADD', p .. 'celery:revoked', now, id)
    local f = redis.call('HMGET', p .. 'job:' .. id, 'state', 'celery_key')
    local st = f[1]
    if f[2] and (st == 'queued' or st == 'retrying' or (st == 'running' and terminate == '1')) then
      OPS.ctl_cancel({p, id, now, 'celery revoke (' .. host .. ')', '1', ttl, max_events})
      if st == 'running' and terminate == '1' then out[#out + 1] = id end
    end
    if terminate ~= '1' then out[#out + 1] = id end
  end
  revoked_trim(p, now, max, expires)
  return out
end

-- celery_revoked(prefix, now, expires): the revoked ids not yet expired (inspect revoked).
OPS.celery_revoked = function(a)
  return redis.call('ZRANGEBYSCORE', a[1] .. 'celery:revoked', tonumber(a[2]) - tonumber(a[3]), '+inf')
end

-- celery_reply(celery_prefix, routing_key, envelope): a remote-control reply goes where kombu's reply
-- exchange would put it, the list RK.reply.celery.pidbox, only while the caller's binding exists (a caller
-- that stopped waiting removed it; kombu drops such replies too). Returns 1 if delivered.
OPS.celery_reply = function(a)
  local kp, rk, env = a[1], a[2], a[3]
  local q = rk .. '.reply.celery.pidbox'
  if redis.call('SISMEMBER', kp .. '_kombu.binding.reply.celery.pidbox', rk .. '\6\22\6\22' .. q) == 0 then
    return 0
  end
  redis.call('LPUSH', kp .. q, env)
  return 1
end
