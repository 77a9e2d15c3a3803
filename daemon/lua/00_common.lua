-- hopper's Redis functions. All files in daemon/lua are concatenated, in name order, into one function
-- library ("hopper") that hopperd loads with FUNCTION LOAD REPLACE on every connect.
--
-- Every function receives the keys it touches in KEYS, in the order SPEC below names their kinds, and its
-- arguments in the order SPEC names them; 99_register.lua binds both to names (k.job, a.fence). SPEC is the
-- Lua twin of the C table in daemon/redis/rfunc.c (tests/e2e/core_functions.sh checks that they agree). All keys
-- of one call share one hash tag: P{Q}:... for a queue's keys, P{@}:... for deployment-wide ones (see
-- schema/redis-keys.md). Lua never decodes a job message: hopperd (C, jansson) parses every message and
-- passes what Lua needs as arguments. Every function takes `now` from Redis's own clock (TIME), never from
-- the caller. Each function is atomic: a job leaves a list in the same step that records where it went.

local TERMINAL = {succeeded = true, failed = true, dead = true, cancelled = true}

-- Every operation, by name; 99_register.lua registers each as hopper_NAME, and hopper_batch runs many.
local OPS = {}
-- Keys (kind names, in KEYS order), arguments (in ARGV order), whether more keys / arguments may follow
-- (vk, va), and the registration flags.
local SPEC = {}
-- Hooks of Celery-sourced jobs (run, progress, finish, expired), filled in by 12_celery.lua.
local CELERY = {}
-- Unique locks and debounce (16_flow.lua): admission and release hooks, called only for jobs that carry one.
local FLOW = {}
-- Rate limits and concurrency keys (17_limits.lua): claim's gate and the release hooks.
local LIMITS = {}

local NOW_CACHE, NOW_NUM = nil, nil
-- Redis's clock, in Unix seconds with millisecond precision as a decimal string, read once per call.
local function clock()
  if not NOW_CACHE then
    local t = redis.call('TIME')
    local sec, ms = tonumber(t[1]), math.floor(tonumber(t[2]) / 1000)
    NOW_CACHE = string.format('%d.%03d', sec, ms)
    NOW_NUM = tonumber(NOW_CACHE) -- (so it equals tonumber(now) exactly)
  end
  return NOW_CACHE
end

-- The same clock as a number, parsed once per call.
local function clock_num()
  if not NOW_CACHE then clock() end
  return NOW_NUM
end

-- tonumber for the small, repeating arguments (counts, limits, TTLs, max_attempts): a string's number is
-- looked up, not parsed again (Lua's tonumber parses twice, with strtod, and it was the largest single cost
-- of the Lua code per job). Bounded: forgotten when it holds NUM_MEMO_MAX strings.
local NUM_MEMO, NUM_MEMO_N, NUM_MEMO_MAX = {}, 0, 4096
local function num(s)
  local v = NUM_MEMO[s]
  if v == nil then
    v = tonumber(s)
    if v == nil then return nil end
    if NUM_MEMO_N >= NUM_MEMO_MAX then NUM_MEMO, NUM_MEMO_N = {}, 0 end
    NUM_MEMO[s], NUM_MEMO_N = v, NUM_MEMO_N + 1
  end
  return v
end

-- Work a call defers to its end (flush_deferred, run by 99_register.lua after every call and before any
-- operation outside HOT): the writes each job made one by one that are cheaper made once per call, since a
-- redis.call costs more in Lua's crossing than most commands do inside Redis.
--   pub:    events to PUBLISH, in order (channel, message, ...). At the end one PUBSUB NUMSUB over the
--           call's channels (and NUMPAT) tells which have a subscriber; only those are published. The call
--           is atomic, so asking at its end is asking at each event: a client that subscribed before the
--           call gets every event, one that subscribes later reads them from the events list, which is
--           written at once. (Subscribers on a replica are not counted: subscribe on the master.)
--   stats:  HINCRBY deltas, key -> field -> n, one HINCRBY per field and key.
--   index:  job index members, key -> {score, id, ...}, one ZADD per key.
--   paused: EXISTS of pause flags read by this call; a pause or resume (not HOT) runs after a flush, which
--           forgets them.
local DEFER = {pub = {}, npub = 0, stats = {}, index = {}, paused = {}}

local function publish_later(channel, msg)
  local n = DEFER.npub
  DEFER.pub[n + 1], DEFER.pub[n + 2] = channel, msg
  DEFER.npub = n + 2
end

local function stat_incr(key, field, by)
  local s = DEFER.stats[key]
  if not s then s = {}; DEFER.stats[key] = s end
  s[field] = (s[field] or 0) + (by or 1)
end

local function is_paused(key)
  local p = DEFER.paused[key]
  if p == nil then
    p = redis.call('EXISTS', key) == 1
    DEFER.paused[key] = p
  end
  return p
end

-- The deferred writes use redis.pcall: one that fails (a key of another type, put there by hand) is logged
-- and the others are still made, since the operations that deferred them have answered already.
local function deferred_call(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    redis.log(redis.LOG_WARNING, 'hopper: a deferred ' .. (...) .. ' failed: ' .. r.err)
    return nil
  end
  return r
end

local function flush_pub()
  local n, pub = DEFER.npub, DEFER.pub
  if n == 0 then return end
  local all = redis.call('PUBSUB', 'NUMPAT') > 0 -- a pattern may match any channel: publish everything
  local live = {}
  if not all then
    local chans, seen, m = {}, {}, 0
    for i = 1, n, 2 do
      local c = pub[i]
      if not seen[c] then seen[c] = true; m = m + 1; chans[m] = c end
    end
    for i = 1, m, 500 do
      local r = redis.call('PUBSUB', 'NUMSUB', unpack(chans, i, math.min(i + 499, m)))
      for j = 1, #r, 2 do if r[j + 1] > 0 then live[r[j]] = true end end
    end
  end
  for i = 1, n, 2 do
    if all or live[pub[i]] then deferred_call('PUBLISH', pub[i], pub[i + 1]) end
    pub[i], pub[i + 1] = nil, nil
  end
  DEFER.npub = 0
end

-- Makes the deferred writes and forgets the pause flags read.
local function flush_deferred()
  for key, s in pairs(DEFER.stats) do
    for field, by in pairs(s) do deferred_call('HINCRBY', key, field, by) end
  end
  for key, list in pairs(DEFER.index) do
    for i = 1, #list, 512 do deferred_call('ZADD', key, unpack(list, i, math.min(i + 511, #list))) end
  end
  DEFER.stats, DEFER.index, DEFER.paused = {}, {}, {}
  flush_pub()
end

local function clock_ms()
  local now = clock()
  return tonumber((now:gsub('%.', '')), 10)
end

-- The prefix P of a key name "P{TAG}:...", and the tag: for channel names and the sibling keys below.
local function key_prefix(key) return string.match(key, '^(.-){') end
local function key_tag(key) return string.match(key, '{(.-)}') end
-- The key of another job of the same queue (same tag, same slot), e.g. an idempotency key's holder.
local function sibling_job(jobkey, id) return string.match(jobkey, '^(.-}:job:)') .. id end

-- Builds an event's JSON by concatenation (cjson.encode formats numbers with printf, which was the largest
-- single cost of a job in Redis). id is a validated name, kind and state are fixed words, attempt, progress
-- and now are decimal strings; free text goes through text_field, which uses cjson for the escaping.
local function event_json(id, kind, state, attempt, progress, now, extra)
  return '{"job":"' .. id .. '","event":"' .. kind .. '","state":"' .. state .. '","attempt":' .. attempt ..
         ',"progress":' .. progress .. ',"at":' .. now .. (extra or '') .. '}'
end

local function text_field(name, text)
  if text == nil or text == '' then return '' end
  return ',"' .. name .. '":' .. cjson.encode(text)
end

-- Appends an event to the job's bounded event list (k.events) and publishes it (at the call's end, to
-- subscribers: DEFER) on the job's channel (the name of its hash key) and on P{@}:events. Terminal events let the list expire with the hash.
local function emit(k, js, max_events, ttl, terminal)
  if redis.call('RPUSH', k.events, js) > num(max_events) then
    redis.call('LTRIM', k.events, '-' .. max_events, '-1')
  end
  if terminal then redis.call('EXPIRE', k.events, ttl) end
  publish_later(k.job, js)
  publish_later(key_prefix(k.job) .. '{@}:events', js)
end

-- Writes a terminal state onto the job hash k.job, lets it expire, counts it (k.stats) and announces it.
-- extra (optional): more field/value pairs for the same HSET (finish folds the attempt's fields in);
-- no_error: the caller read the hash and it holds no error field (saves the HDEL); held (optional): the
-- caller's fenced() read of the hash (03_run.lua), whose fields 7, 8 and 9 are flow, cc and rl_due (saves
-- the HMGET of the release hooks).
local function finish_terminal(k, id, state, now, err, max_events, ttl, attempt, progress, extra, no_error, held)
  local f = extra or {}
  local n = #f
  f[n + 1], f[n + 2], f[n + 3], f[n + 4], f[n + 5], f[n + 6], f[n + 7], f[n + 8] =
    'state', state, 'finished_at', now, 'updated_at', now, 'inc', ''
  if err == '' then
    redis.call('HSET', k.job, unpack(f))
    if not no_error then redis.call('HDEL', k.job, 'error') end
  else
    f[n + 9], f[n + 10] = 'error', err
    redis.call('HSET', k.job, unpack(f))
  end
  redis.call('EXPIRE', k.job, ttl)
  stat_incr(k.stats, state)
  emit(k, event_json(id, 'state', state, attempt, progress, now, text_field('error', err)), max_events, ttl, true)
  local flow, cc, rl_due
  if held then
    flow, cc, rl_due = held[7], held[8], held[9]
  else
    local h = redis.call('HMGET', k.job, 'flow', 'cc', 'rl_due')
    flow, cc, rl_due = h[1], h[2], h[3]
  end
  if flow then FLOW.terminal(id, flow) end
  if cc or rl_due then LIMITS.terminal(k, id, cc, rl_due) end
end

-- state (or nil), attempt and progress of a job hash, as strings.
local function job_status(h)
  local f = redis.call('HMGET', h, 'state', 'attempt', 'progress')
  return f[1], f[2] or '0', f[3] or '0'
end

-- The queue's job index k.jobs (score = enqueue time): the control op list. Trimmed to the result TTL by
-- the first write of each second (Redis's clock) per index, not by every write: the trim was one command
-- of every job's admission, and members past the TTL now stay at most a second longer. INDEX_TRIMMED lives
-- with the loaded library (like BOUND in 99_register.lua; a reload starts it afresh, which only trims
-- once more); it is reset when it holds INDEX_TRIMMED_MAX indexes, so it stays bounded whatever the number
-- of queues. Members whose hash expired sooner are dropped by list when it meets them.
local INDEX_TRIMMED, INDEX_TRIMMED_N, INDEX_TRIMMED_MAX = {}, 0, 1024
local function index_add(k, id, now, ttl)
  local list = DEFER.index[k.jobs]
  if not list then list = {}; DEFER.index[k.jobs] = list end
  list[#list + 1], list[#list + 2] = now, id
  local sec = string.match(now, '^%d+')
  local last = INDEX_TRIMMED[k.jobs]
  if last == sec then return end
  if not last then
    if INDEX_TRIMMED_N >= INDEX_TRIMMED_MAX then INDEX_TRIMMED, INDEX_TRIMMED_N = {}, 0 end
    INDEX_TRIMMED_N = INDEX_TRIMMED_N + 1
  end
  INDEX_TRIMMED[k.jobs] = sec
  redis.call('ZREMRANGEBYSCORE', k.jobs, '-inf', '(' .. (tonumber(now) - tonumber(ttl)))
end

-- Adds a dead entry (k.dead: id by time of death; k.deadmsg: id -> entry JSON), then enforces the bounds:
-- at most dead_max entries and none older than dead_age seconds, removing at most 100 per call so a
-- lowered bound never blocks Redis (the rest go with the next deaths).
local function dead_add(k, id, entry, now, dead_max, dead_age)
  redis.call('ZADD', k.dead, now, id)
  redis.call('HSET', k.deadmsg, id, entry)
  local over = redis.call('ZCARD', k.dead) - tonumber(dead_max)
  if over > 0 then
    local old = redis.call('ZPOPMIN', k.dead, math.min(over, 100))
    for i = 1, #old, 2 do redis.call('HDEL', k.deadmsg, old[i]) end
  end
  local aged = redis.call('ZRANGEBYSCORE', k.dead, '-inf', '(' .. (tonumber(now) - tonumber(dead_age)), 'LIMIT', 0, 100)
  for _, e in ipairs(aged) do
    redis.call('ZREM', k.dead, e)
    redis.call('HDEL', k.deadmsg, e)
  end
end

-- The dead entry of a job that dies after admission (dead-entry.schema.json).
local function dead_entry(id, q, typ, err, now, attempt, node, payload)
  return cjson.encode({id = id, queue = q, type = typ or cjson.null, error = err, died_at = tonumber(now),
                       attempt = tonumber(attempt), node = node, payload = payload})
end

-- job_create: admission, the only way a job hash comes to exist (raw intake by claim, control submit,
-- Celery intake, workflow children). a holds id, type, max_attempts, created_at ('' = now), owner, idem,
-- payload (the message as stored: it carries the id). Keys: k.job, k.events, k.idem (the owner's: hopperd
-- scopes idempotency keys by owner, daemon/redis/rfunc.c), k.jobs.
-- Returns {'exists', state} when the id has a hash already (nothing written); {'duplicate', holder, state}
-- when another job of the queue holds the idempotency key (nothing written, unless force_hash: then the
-- hash is written without taking the key, for the caller to end it); {'duplicate', holder, state, 'unique'}
-- likewise for a unique lock (a.flow, 16_flow.lua); or {'created', run_at}: run_at (or nil) is when a
-- debounced job may start, which overrides a.run_at. claim_inc, claim_node (optional): claim's fields for a
-- job it runs at once (fence 1, inc, node), written in the same HSET unless the job is a duplicate.
local function job_create(k, a, now, ttl, max_events, force_hash, claim_inc, claim_node)
  local st = redis.call('HGET', k.job, 'state')
  if st then return {'exists', st} end
  local dup = nil
  if a.idem ~= '' then
    local g = redis.call('GET', k.idem)
    if g and g ~= a.id then
      local hs = redis.call('HGET', sibling_job(k.job, g), 'state')
      if hs then dup = {'duplicate', g, hs} end
    end
    if dup and not force_hash then return dup end
  end
  local flow = a.flow ~= nil and a.flow ~= ''
  if flow and not dup then
    dup = FLOW.duplicate(k, a)
    if dup and not force_hash then return dup end
  end
  local created = a.created_at
  if created == nil or created == '' then created = now end
  if claim_inc and not dup then
    redis.call('HSET', k.job, 'state', 'queued', 'fence', '1', 'progress', '0', 'attempt', '0', 'id', a.id, 'type', a.type,
               'queue', key_tag(k.job), 'max_attempts', a.max_attempts, 'created_at', created, 'enqueued_at', now,
               'updated_at', now, 'payload', a.payload, 'stalls', '0', 'inc', claim_inc, 'node', claim_node)
  else
    redis.call('HSET', k.job, 'state', 'queued', 'fence', '0', 'progress', '0', 'attempt', '0', 'id', a.id, 'type', a.type,
               'queue', key_tag(k.job), 'max_attempts', a.max_attempts, 'created_at', created, 'enqueued_at', now,
               'updated_at', now, 'payload', a.payload, 'stalls', '0')
  end
  if a.owner ~= '' then redis.call('HSET', k.job, 'owner', a.owner) end
  if a.idem ~= '' then
    redis.call('HSET', k.job, 'idempotency_key', a.idem)
    if not dup then redis.call('SET', k.idem, a.id, 'EX', ttl) end
  end
  emit(k, event_json(a.id, 'state', 'queued', '0', '0', now), max_events, ttl, false)
  index_add(k, a.id, now, ttl)
  if dup then return dup end
  if flow then return {'created', FLOW.admitted(k, a, now, ttl, max_events)} end
  return {'created'}
end

-- Admits one job (job_create) and puts it where it starts: the queue's head (k.queue), or the scheduled set
-- when run_at, or its debounce, is ahead of Redis's clock. k is the job's keys (job, events, idem, flow,
-- jobs, stats, scheduled, queue). Returns job_create's reply (nothing is pushed unless 'created').
local function admit_push(k, a, now, ttl, max_events)
  local c = job_create(k, a, now, ttl, max_events, false)
  if c[1] ~= 'created' then return c end
  if c[2] then a.run_at = c[2] end -- debounced: its start is the burst's
  if a.run_at ~= '0' and tonumber(a.run_at) > clock_num() then
    redis.call('HSET', k.job, 'run_at', a.run_at)
    redis.call('ZADD', k.scheduled, a.run_at, a.payload)
  else
    redis.call('LPUSH', k.queue, a.payload)
  end
  return c
end
