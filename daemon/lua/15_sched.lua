-- Schedules (daemon/sched.c, daemon/ctl/ctl_sched.c; schema/schedule.schema.json). A schedule belongs to the
-- queue its jobs go to, so all its keys share the queue's hash tag: P{Q}:scheds (the names), P{Q}:sched:NAME
-- (a hash: def, owner, cron, tz, ver, next, due, paused, fires, missed, last_fire, last_job, ...) and
-- P{Q}:sched_due (name by due time, ms). Fire times are computed in C (cron, zones, jitter); each one is
-- claimed here exactly once: sched_fire writes only if the schedule's version and next fire time are still
-- what the caller read, and its jobs' ids derive from the fire time (sched-NAME-<ms>), so even a replayed
-- fire finds its job existing and creates nothing. next = '' means "not computed yet" (after put or resume):
-- the next poll computes it from Redis's clock, so no daemon's clock decides when a schedule fires.

local function sched_visible(h, owner, admin)
  if admin == '1' then return true end
  return redis.call('HGET', h, 'owner') == owner
end

SPEC.sched_put = {keys = {'scheds', 'sched', 'sched_due'},
                  args = {'name', 'def', 'owner', 'admin', 'cron', 'tz', 'paused', 'max'}}
-- Creates or replaces a schedule. Another owner's name answers {'conflict'} (names are one namespace per
-- queue, as stored workflows'); a queue already holding max schedules answers {'limit'}. The fire history
-- (fires, missed, last_*) survives a replace; the next fire time is recomputed from now by the next poll.
-- Returns {'created' | 'replaced', ver}.
OPS.sched_put = function(k, a)
  local exists = redis.call('EXISTS', k.sched) == 1
  if exists and a.admin ~= '1' and redis.call('HGET', k.sched, 'owner') ~= a.owner then return {'conflict'} end
  if not exists and redis.call('SCARD', k.scheds) >= tonumber(a.max) then return {'limit'} end
  local now = clock()
  -- A new schedule's version starts at Redis's clock (ms x 1000), not 1: a claim read before an rm and a
  -- put of the same name cannot match the new schedule's version.
  local ver
  if exists then ver = redis.call('HINCRBY', k.sched, 'ver', 1) else
    ver = string.format('%d', clock_ms()) .. '000'
    redis.call('HSET', k.sched, 'ver', ver)
  end
  redis.call('HSET', k.sched, 'name', a.name, 'def', a.def, 'owner', a.owner, 'cron', a.cron, 'tz', a.tz,
             'next', '', 'due', '', 'paused', a.paused, 'updated_at', now)
  if not exists then redis.call('HSET', k.sched, 'created_at', now, 'fires', '0', 'missed', '0') end
  redis.call('SADD', k.scheds, a.name)
  if a.paused == '1' then redis.call('ZREM', k.sched_due, a.name) else redis.call('ZADD', k.sched_due, 0, a.name) end
  return {exists and 'replaced' or 'created', tostring(ver)}
end

SPEC.sched_rm = {keys = {'scheds', 'sched', 'sched_due'}, args = {'name', 'owner', 'admin'}, flags = 'allow-oom'}
-- Removes a schedule (its jobs already made stay). Returns {'ok'} or {'not_found'}.
OPS.sched_rm = function(k, a)
  if redis.call('EXISTS', k.sched) == 0 or not sched_visible(k.sched, a.owner, a.admin) then return {'not_found'} end
  redis.call('DEL', k.sched)
  redis.call('SREM', k.scheds, a.name)
  redis.call('ZREM', k.sched_due, a.name)
  return {'ok'}
end

SPEC.sched_pause = {keys = {'sched', 'sched_due'}, args = {'name', 'owner', 'admin', 'on'}, flags = 'allow-oom'}
-- Pauses (no fires; the due entry goes) or resumes a schedule. A resumed schedule's next fire time is
-- recomputed from now: fire times that fell in the pause are not run (nothing was missed: it was asked
-- for). Returns {'ok', was_paused ('1' or '0')} or {'not_found'}.
OPS.sched_pause = function(k, a)
  if redis.call('EXISTS', k.sched) == 0 or not sched_visible(k.sched, a.owner, a.admin) then return {'not_found'} end
  local was = redis.call('HGET', k.sched, 'paused') == '1' and '1' or '0'
  if a.on == '1' then
    redis.call('HSET', k.sched, 'paused', '1', 'updated_at', clock())
    redis.call('ZREM', k.sched_due, a.name)
  elseif was == '1' then
    redis.call('HINCRBY', k.sched, 'ver', 1)
    redis.call('HSET', k.sched, 'paused', '0', 'next', '', 'due', '', 'updated_at', clock())
    redis.call('ZADD', k.sched_due, 0, a.name)
  end
  return {'ok', was}
end

SPEC.sched_due = {keys = {'sched_due'}, args = {'tag', 'limit'}, flags = 'no-writes'}
-- What a daemon's poll reads: {now_ms, next_due_ms or '', then per due schedule: name, ver, next, def}.
-- Reads the hashes of the due set's members (P{Q}:sched:NAME: tag is "P{Q}:sched:", same slot; the read
-- that is not declared, as ctl_list's). At most limit schedules per call.
OPS.sched_due = function(k, a)
  local now = string.format('%d', clock_ms())
  local out = {now, ''}
  local later = redis.call('ZRANGEBYSCORE', k.sched_due, '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if later[2] then out[2] = later[2] end
  local due = redis.call('ZRANGEBYSCORE', k.sched_due, '-inf', now, 'LIMIT', 0, tonumber(a.limit))
  for _, name in ipairs(due) do
    local f = redis.call('HMGET', a.tag .. name, 'ver', 'next', 'def', 'paused')
    if f[1] and f[3] and f[4] ~= '1' then
      out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = name, f[1], f[2] or '', f[3]
    end
  end
  return out
end

SPEC.sched_fire = {keys = {'sched', 'sched_due', 'queue', 'scheduled', 'jobs', 'stats'}, vk = true,
                   args = {'name', 'ver', 'expect', 'next', 'due', 'missed', 'error', 'ttl', 'max_events', 'n'}, va = true}
-- Claims one due schedule's fire times: if its ver and next are still ver and expect (no other daemon claimed
-- them, no put or pause came between), admits the n jobs (extra keys per job: job, events, idem, flow; extra
-- arguments per job as ctl_submit's: id, type, max_attempts, created_at, owner, idem, run_at, payload, flow)
-- and moves the schedule on to next ('-1': no fire left, it leaves the due set) due at due. A job whose id
-- exists already (a fire replayed) is not made again; one whose unique lock or idempotency key another job
-- holds is skipped (counted in `skipped`, said in `error`). due = '' only notes error (a daemon that cannot
-- make the jobs: nothing else changes). Returns {'fired', created, existing, skipped}, {'noted'} or {'stale'}.
OPS.sched_fire = function(k, a, keys, args)
  local f = redis.call('HMGET', k.sched, 'ver', 'next', 'paused')
  if f[1] ~= a.ver or (f[2] or '') ~= a.expect or f[3] == '1' then return {'stale'} end
  if a.due == '' then -- a daemon that cannot make its jobs says why; due stays, the other daemons claim it
    redis.call('HSET', k.sched, 'error', a.error)
    return {'noted'}
  end
  local now, n, created, existing, held = clock(), tonumber(a.n), 0, 0, 0
  local last_id, why = nil, nil
  for i = 0, n - 1 do
    local b, c = i * 9, 7 + i * 4
    local jk = {job = keys[c], events = keys[c + 1], idem = keys[c + 2], flow = keys[c + 3], jobs = k.jobs,
                stats = k.stats, scheduled = k.scheduled, queue = k.queue}
    local ja = {id = args[b + 1], type = args[b + 2], max_attempts = args[b + 3], created_at = args[b + 4],
                owner = args[b + 5], idem = args[b + 6], run_at = args[b + 7], payload = args[b + 8], flow = args[b + 9]}
    local r = admit_push(jk, ja, now, a.ttl, a.max_events)
    if r[1] == 'created' then
      created, last_id = created + 1, ja.id
    elseif r[1] == 'exists' then
      existing = existing + 1 -- this fire time was claimed before (a replay): its job is there
    else -- its unique lock or idempotency key is held: the previous run still holds it
      held = held + 1
      why = 'fire ' .. ja.id .. ' skipped: job ' .. r[2] .. ' holds its ' .. (r[4] or 'idempotency') .. ' key'
    end
  end
  redis.call('HSET', k.sched, 'next', a.next, 'due', a.due)
  if last_id then redis.call('HSET', k.sched, 'last_at', now, 'last_job', last_id) end
  if why then redis.call('HSET', k.sched, 'error', why) elseif created > 0 then redis.call('HDEL', k.sched, 'error') end
  if created > 0 then
    redis.call('HINCRBY', k.sched, 'fires', created)
    redis.call('HINCRBY', k.stats, 'schedule_fires', created)
  end
  if held > 0 then redis.call('HINCRBY', k.sched, 'skipped', held) end
  if a.missed ~= '0' then
    redis.call('HINCRBY', k.sched, 'missed', a.missed)
    redis.call('HINCRBY', k.stats, 'schedule_missed', a.missed)
  end
  if a.next == '-1' then redis.call('ZREM', k.sched_due, a.name) else
    redis.call('ZADD', k.sched_due, a.due, a.name)
  end
  return {'fired', created, existing, held}
end

SPEC.sched_list = {keys = {'scheds'}, args = {'tag', 'owner', 'admin'}, flags = 'no-writes'}
-- The queue's schedules visible to the caller (at most SCHED_PER_QUEUE_MAX): per schedule a flat list of
-- name, owner, cron, tz, next, paused, fires, missed, last_at, last_job, error (empty strings for unset).
local SCHED_SUMMARY = {'name', 'owner', 'cron', 'tz', 'next', 'paused', 'fires', 'missed', 'last_at', 'last_job',
                       'error'}
OPS.sched_list = function(k, a)
  local out = {}
  for _, name in ipairs(redis.call('SMEMBERS', k.scheds)) do
    local h = a.tag .. name
    local f = redis.call('HMGET', h, unpack(SCHED_SUMMARY))
    if f[1] and (a.admin == '1' or f[2] == a.owner) then
      for j = 1, #SCHED_SUMMARY do f[j] = f[j] or '' end
      out[#out + 1] = f
    end
  end
  return out
end

SPEC.sched_show = {keys = {'sched'}, args = {'owner', 'admin'}, flags = 'no-writes'}
-- A schedule's whole hash (flat field/value list), or {} when it is missing or another owner's.
OPS.sched_show = function(k, a)
  if redis.call('EXISTS', k.sched) == 0 or not sched_visible(k.sched, a.owner, a.admin) then return {} end
  return redis.call('HGETALL', k.sched)
end
