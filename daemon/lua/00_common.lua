-- hopper's Redis functions. All files in daemon/lua are concatenated, in name order, into one function
-- library ("hopper") that hopperd loads with FUNCTION LOAD REPLACE on every connect. Every function takes
-- the key prefix as its first argument and builds key names itself (see schema/redis-keys.md), so hopper
-- needs a standalone Redis (or one primary), not a cluster. Each function is atomic: a job leaves a list
-- in the same step that records where it went.

local TERMINAL = {succeeded = true, failed = true, dead = true, cancelled = true}

-- Every operation, by name; 99_register.lua registers each as hopper_NAME, and hopper_batch runs many.
local OPS = {}
-- Hooks of Celery-sourced jobs (run, progress, finish, expired), filled in by 12_celery.lua.
local CELERY = {}

-- Builds an event's JSON by concatenation. (cjson.encode formats every number with printf, and that was
-- the largest single cost of a job in Redis.) id is a validated name, kind and state are fixed words, and
-- attempt, progress and now are decimal strings exactly as hopperd sent them or the hash holds them; free
-- text goes through text_field, which uses cjson for the escaping.
local function event_json(id, kind, state, attempt, progress, now, extra)
  return '{"job":"' .. id .. '","event":"' .. kind .. '","state":"' .. state .. '","attempt":' .. attempt ..
         ',"progress":' .. progress .. ',"at":' .. now .. (extra or '') .. '}'
end

-- ',"name":"text"' (JSON-escaped), or '' when there is no text.
local function text_field(name, text)
  if text == nil or text == '' then return '' end
  return ',"' .. name .. '":' .. cjson.encode(text)
end

-- Appends an event to the job's bounded event list and publishes it on the job's own channel and on the
-- global events channel. The list expires with the job (terminal events set its TTL). max_events and ttl
-- are decimal strings.
local function emit(p, id, js, max_events, ttl, terminal)
  local k = p .. 'job:' .. id .. ':events'
  if redis.call('RPUSH', k, js) > tonumber(max_events) then redis.call('LTRIM', k, '-' .. max_events, '-1') end
  if terminal then redis.call('EXPIRE', k, ttl) end
  redis.call('PUBLISH', p .. 'job:' .. id, js)
  redis.call('PUBLISH', p .. 'events', js)
end

-- Writes a terminal state onto an existing job hash, lets it expire, counts it and announces it.
-- attempt and progress are the strings the hash holds (callers have read them already).
local function finish_terminal(p, id, state, now, err, max_events, ttl, attempt, progress)
  local h = p .. 'job:' .. id
  if err == '' then
    redis.call('HSET', h, 'state', state, 'finished_at', now, 'updated_at', now)
    redis.call('HDEL', h, 'error')
  else
    redis.call('HSET', h, 'state', state, 'error', err, 'finished_at', now, 'updated_at', now)
  end
  redis.call('EXPIRE', h, ttl)
  redis.call('HINCRBY', p .. 'stats', state, '1')
  emit(p, id, event_json(id, 'state', state, attempt, progress, now, text_field('error', err)), max_events, ttl,
       true)
end

-- Reads the fields most scripts decide on, in one call: state (or nil), attempt and progress as strings.
local function job_status(h)
  local f = redis.call('HMGET', h, 'state', 'attempt', 'progress')
  return f[1], f[2] or '0', f[3] or '0'
end

-- The job index P jobs (sorted set, score = enqueue time): the control socket's list (12_ctl.lua). Entries older than the result TTL
-- go on every write; entries whose hash expired sooner are dropped by list when it meets them.
local function index_add(p, id, now, ttl)
  redis.call('ZADD', p .. 'jobs', now, id)
  redis.call('ZREMRANGEBYSCORE', p .. 'jobs', '-inf', '(' .. (tonumber(now) - tonumber(ttl)))
end

-- security (issue 11, item 7): an idempotency key is scoped by its job's owner, so another owner's key
-- never collides with (or reveals) this owner's: P idem:KEY for jobs without an owner (raw pushes), else
-- P idem:@LEN:OWNER:KEY (the length keeps owner and key apart whatever bytes they hold).
local function idem_key(p, owner, idem)
  if owner == nil or owner == '' then return p .. 'idem:' .. idem end
  return p .. 'idem:@' .. #owner .. ':' .. owner .. ':' .. idem
end

-- Returns every job in node n's inflight lists to the head of its queue, oldest nearest the head.
local function return_inflight(p, n)
  local moved = 0
  for _, q in ipairs(redis.call('SMEMBERS', p .. 'node:' .. n .. ':queues')) do
    local src, dst = p .. 'inflight:' .. n .. ':' .. q, p .. 'queue:' .. q
    while redis.call('LMOVE', src, dst, 'LEFT', 'RIGHT') do
      moved = moved + 1
    end
  end
  return moved
end
