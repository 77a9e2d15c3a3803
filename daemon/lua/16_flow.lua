-- Unique jobs and debounce (README "Unique jobs and debounce"). hopperd parses a job's "unique" or
-- "debounce" field (common/job_flow.c) and passes it as the argument `flow`, with the lock's key k.flow
-- (P{Q}:flow:[@LEN:OWNER:]u:KEY or ...d:KEY, scoped per queue and owner like an idempotency key). Admission
-- (job_create) asks FLOW.duplicate and FLOW.admitted; a job's start (run) and its terminal state
-- (finish_terminal) call FLOW.started and FLOW.terminal, which find the lock through the job hash's `flow`
-- field ("u<TAB>UNTIL<TAB>KEYNAME" or "d<TAB><TAB>KEYNAME"): the lock key shares the job's hash tag, so it is
-- in the job's slot although those calls do not declare it (schema/redis-keys.md).
--
-- unique: k.flow is a string, the holder's id (with the TTL of until 'ttl', or the optional bound ttl_s).
--   A second job while it holds is not admitted (control submit answers with the holder's id) or, arriving
--   raw on the queue, is admitted and ended cancelled "duplicate of job H (unique key K)" with duplicate_of.
--   Released (compare and delete: only its holder's id) when the holder starts (until 'started') or ends
--   (until 'finished': a retry keeps it; also 'started' jobs ended before starting), or by the key's TTL
--   (until 'ttl'). A holder that is gone, or ended while holding a non-TTL lock, does not hold it: such a
--   lock is taken over, so a release missed by some path cannot wedge the key.
-- debounce: k.flow is a hash {id, first}: the pending job and the time of the first submit of the burst. A
--   new job replaces the pending one while it still waits in the scheduled set (it ends cancelled
--   "debounced by ID", with debounced_by), keeps `first`, and is scheduled at min(now + delay_s, first +
--   max_wait_s); otherwise it starts a new burst (first = now). Released when the pending job starts or ends.

local function flow_spec(flow)
  return string.match(flow, '^(%a)\t([^\t]*)\t([^\t]*)$')
end

-- The lock's own key text (after u: / d:), for messages.
local function flow_key_text(key) return string.match(key, ':[ud]:(.*)$') or key end

local function release(key, kind, id)
  if kind == 'u' then
    if redis.call('GET', key) == id then redis.call('DEL', key) end
  elseif redis.call('HGET', key, 'id') == id then
    redis.call('DEL', key)
  end
end

-- {'duplicate', holder, holder_state, 'unique'} when another live job holds the unique lock k.flow; nil
-- otherwise (also for a debounce job, which never is a duplicate).
FLOW.duplicate = function(k, a)
  if string.sub(a.flow, 1, 1) ~= 'u' then return nil end
  local g = redis.call('GET', k.flow)
  if not g or g == a.id then return nil end
  local f = redis.call('HMGET', sibling_job(k.job, g), 'state', 'flow')
  if not f[1] then return nil end
  if TERMINAL[f[1]] and not (f[2] and string.match(f[2], '^u\tttl\t')) then return nil end
  return {'duplicate', g, f[1], 'unique'}
end

FLOW.key_text = flow_key_text

local function debounce(k, a, now, ttl, max_events, delay, max_wait)
  local first = now
  local h = redis.call('HMGET', k.flow, 'id', 'first')
  if h[1] and h[1] ~= a.id then
    local hk = sibling_job(k.job, h[1])
    local f = redis.call('HMGET', hk, 'state', 'payload', 'attempt')
    if f[1] == 'queued' and f[2] and redis.call('ZSCORE', k.scheduled, f[2]) then
      redis.call('ZREM', k.scheduled, f[2])
      local ek = string.match(hk, '^(.-}:)job:') .. 'events:' .. h[1]
      finish_terminal({job = hk, events = ek, stats = k.stats}, h[1], 'cancelled', now, 'debounced by ' .. a.id,
                      max_events, ttl, f[3] or '0', '0', {'debounced_by', a.id})
      redis.call('HINCRBY', k.stats, 'debounced', 1)
      first = h[2] or now
    end
  end
  local run_at = string.format('%.3f', math.min(tonumber(now) + delay, tonumber(first) + max_wait))
  redis.call('DEL', k.flow)
  redis.call('HSET', k.flow, 'id', a.id, 'first', first)
  redis.call('EXPIRE', k.flow, math.ceil(tonumber(run_at) - tonumber(now)) + tonumber(ttl))
  redis.call('HSET', k.job, 'flow', 'd\t\t' .. k.flow, 'debounce_first', first)
  return run_at
end

-- After job_create wrote the hash of a job that is no duplicate: takes the unique lock, or replaces the
-- pending job of the debounce key. Returns the run_at the job must wait for (debounce), or nil.
FLOW.admitted = function(k, a, now, ttl, max_events)
  local kind, x, y = flow_spec(a.flow)
  if kind == 'u' then
    if tonumber(y) > 0 then
      redis.call('SET', k.flow, a.id, 'PX', math.ceil(tonumber(y) * 1000))
      redis.call('HSET', k.job, 'flow_ttl', y) -- the bound a retry's retake keeps (FLOW.retake)
    else
      redis.call('SET', k.flow, a.id)
    end
    redis.call('HSET', k.job, 'flow', 'u\t' .. x .. '\t' .. k.flow)
    return nil
  end
  if kind == 'd' then return debounce(k, a, now, ttl, max_events, tonumber(x), tonumber(y)) end
  return nil
end

-- The job (hash field flow) went to a worker: until 'started' locks and debounce keys are released.
FLOW.started = function(id, flow)
  local kind, upto, key = flow_spec(flow)
  if kind == 'd' or (kind == 'u' and upto == 'started') then release(key, kind, id) end
end

-- The job reached a terminal state (flow: its hash's field): every lock but a TTL one is released.
FLOW.terminal = function(id, flow)
  local kind, upto, key = flow_spec(flow)
  if kind == 'd' or (kind == 'u' and upto ~= 'ttl') then release(key, kind, id) end
end

-- A failed or dead job goes back to its queue (retry, dead_retry): the unique lock it held until it started
-- or finished is taken again, so a retried job is as unique as a new one. Returns nil (taken, or none to
-- take: a debounce job, a TTL lock), or the id of another live job that holds the lock now: then nothing is
-- written and the retry is refused, as a submit of that key would be.
FLOW.retake = function(id, jobkey, flow)
  local kind, upto, key = flow_spec(flow)
  if kind ~= 'u' or upto == 'ttl' then return nil end
  local g = redis.call('GET', key)
  if g and g ~= id then
    local st = redis.call('HGET', sibling_job(jobkey, g), 'state')
    if st and not TERMINAL[st] then return g end
  end
  local ttl = tonumber(redis.call('HGET', jobkey, 'flow_ttl') or '')
  if ttl and ttl > 0 then
    redis.call('SET', key, id, 'PX', math.ceil(ttl * 1000))
  else
    redis.call('SET', key, id)
  end
  return nil
end
