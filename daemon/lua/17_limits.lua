-- Rate limits and concurrency keys (README "Rate limits and concurrency keys"). hopperd parses a job's
-- "rate_limit" and "concurrency" fields (common/job_limits.c) and passes them to claim as the arguments
-- rl ("INTERVAL_MS<TAB>BURST", or '') and cc (the limit N, or ''), with the keys k.rl and k.cc, scoped per
-- queue and owner like an idempotency key (daemon/redis/rfunc.c):
--   P{Q}:rl:KEY   the bucket: its theoretical arrival time in ms (GCRA), expiring once the bucket is full;
--   P{Q}:cc:KEY   zset: the jobs holding one of the key's N slots (member id, score the claim time).
-- And sibling keys in the same slot, derived here: P{Q}:ccw:KEY (list: messages waiting for a slot, oldest
-- at the right), P{Q}:ccq (hash: cc key -> N, for the keys that have waiters: the sweep's work list) and
-- P{Q}:rlw (zset: id -> due ms, the jobs holding a reserved token; ctl_queues counts it).
--
-- Rate limit: every job draws a token when it is claimed. A token due later than now is reserved for the
-- job, which waits in the scheduled set until then (stage 'rate_limited', hash field rl_due) and runs when
-- promoted, without drawing again: a waiting job holds no worker and is claimed twice, never polled. With
-- interval T and burst b the bucket admits b at once and then one per T, for all daemons together.
-- Concurrency: a job starts only while fewer than N of the key's jobs hold a slot and no older job waits
-- for one; otherwise its message moves to the key's waiting list (stage 'concurrency'). A slot is taken at
-- claim and given back when the job ends or goes back (retry, requeue), which moves the oldest waiter to
-- the head of the queue. A holder whose hash is gone or ended, or whose claim belongs to a reaped
-- incarnation (a dead daemon), holds nothing and is dropped when the key is full; promote sweeps keys with
-- waiters so a slot freed that way is handed on even when no job arrives.

local function qkey(key, kind) return string.match(key, '^(.-}:)') .. kind end
local function cc_wait_key(cc) return (string.gsub(cc, '^(.-}:)cc:', '%1ccw:', 1)) end
-- A limit key's own name, for messages: after the kind, past the owner scope @LEN:OWNER: if any.
local function limit_text(key)
  local t = string.match(key, '}:%a+:(.*)$') or key
  local len, rest = string.match(t, '^@(%d+):(.*)$')
  if len then return string.sub(rest, tonumber(len) + 2) end
  return t
end

-- Whether job id (of the queue whose job keys start with jp) holds its slot: it exists, has not ended and
-- was claimed by an incarnation that was not reaped.
local function holds(jp, reaped, id)
  local h = redis.call('HMGET', jp .. id, 'state', 'inc')
  if not h[1] or TERMINAL[h[1]] or not h[2] or h[2] == '' then return false end
  return not redis.call('ZSCORE', reaped, h[2])
end

-- Drops the members of cc that hold nothing; returns how many hold.
local function prune(cc, reaped)
  local jp, n = qkey(cc, 'job:'), 0
  for _, id in ipairs(redis.call('ZRANGE', cc, 0, -1)) do
    if holds(jp, reaped, id) then n = n + 1 else redis.call('ZREM', cc, id) end
  end
  return n
end

-- Moves up to n waiters of cc to the head of the queue, where the next fetch takes them first.
local function wake(cc, n)
  local w, q, moved = cc_wait_key(cc), qkey(cc, 'queue'), 0
  while moved < n and redis.call('LMOVE', w, q, 'RIGHT', 'RIGHT') do moved = moved + 1 end
  return moved
end

local function drop_token(k, id)
  redis.call('HDEL', k.job, 'rl_due')
  redis.call('ZREM', qkey(k.job, 'rlw'), id)
end

-- clock() has millisecond resolution: the true time lies anywhere in [now_ms, now_ms + 1). A token due
-- within that tick is due now. (Comparing with now_ms alone deferred every job but the first claimed in a
-- millisecond: a burst-1 bucket of 100000/s admitted about 1 job per ms at once and sent the rest through
-- the scheduled set, 95% of them in bench/limits.sh, and a reserved token due at X.4 ms, promoted at X ms
-- by its rounded run_at, was parked again.) So at most rate x (W + 1 ms) + burst tokens in any W seconds.
local TICK_MS = 1
local function due_now(due, now_ms) return due < now_ms + TICK_MS end

-- Draws a token from k.rl: nil when the job may start now, else the time (ms) its reserved token is due.
local function draw(k, a, now_ms)
  local t, burst = string.match(a.rl, '^([^\t]+)\t(%d+)$')
  t, burst = tonumber(t), tonumber(burst)
  local tat = tonumber(redis.call('GET', k.rl) or '0')
  if tat < now_ms then tat = now_ms end
  redis.call('SET', k.rl, string.format('%.3f', tat + t), 'PX', math.ceil(tat + t - now_ms) + 1000)
  local due = tat - (burst - 1) * t
  if due_now(due, now_ms) then return nil end
  return due
end

-- A job parked by a limit is queued again if it was left 'running' by a reaped holder (claim takes such
-- jobs over): watchers and counts must not see a job that waits as running. Parking also ends any earlier
-- claim: a claim taken over from a reaped incarnation still carried that holder's fencing token, so the
-- holder, stopped (SIGSTOP) with the job prefetched and then continued, had its `run` accepted and
-- started the parked job beside the slot's new holder (limits_faults.sh (e)). A new token fences it.
local function park_state(k, a, st, attempt, now)
  redis.call('HINCRBY', k.job, 'fence', 1)
  if st ~= 'running' then return end
  redis.call('HSET', k.job, 'state', 'queued', 'progress', '0')
  emit(k, event_json(a.id, 'state', 'queued', attempt, '0', now), a.max_events, a.ttl, false)
end

-- The message leaves this node's inflight list for the waiting list of k.cc (a woken job keeps its place
-- at the head). Any reserved token goes: the job draws again when it gets a slot, so jobs held back here
-- never start in a burst on old tokens.
local function wait_slot(k, a, now, n, woken, st, attempt)
  redis.call('LREM', k.inflight, -1, a.payload)
  park_state(k, a, st, attempt, now)
  local w = cc_wait_key(k.cc)
  if woken then redis.call('RPUSH', w, a.payload) else redis.call('LPUSH', w, a.payload) end
  redis.call('HSET', qkey(k.cc, 'ccq'), k.cc, a.cc)
  drop_token(k, a.id)
  redis.call('HSET', k.job, 'cc_wait', '1', 'inc', '', 'stage', 'concurrency', 'updated_at', now, 'message',
             'concurrency key ' .. limit_text(k.cc) .. ': ' .. n .. ' of ' .. a.cc .. ' slots held; waits for one')
  redis.call('HINCRBY', k.stats, 'concurrency_waited', 1)
  return {'limited', limit_text(k.cc)}
end

-- Claim's gate for a job with a limit, after its run_at has come and before it is fenced: nil when it
-- starts now (its slot taken, its token drawn), else the reply that parks it. st, attempt: the hash's.
LIMITS.admit = function(k, a, now, st, attempt)
  local h = redis.call('HMGET', k.job, 'rl_due', 'cc_wait')
  local woken = h[2] ~= false
  if a.cc ~= '' and not redis.call('ZSCORE', k.cc, a.id) then
    local n = redis.call('ZCARD', k.cc)
    if n >= tonumber(a.cc) then n = prune(k.cc, k.reaped) end
    if n >= tonumber(a.cc) or (not woken and redis.call('LLEN', cc_wait_key(k.cc)) > 0) then
      return wait_slot(k, a, now, n, woken, st, attempt)
    end
  end
  if a.rl ~= '' then
    local now_ms = tonumber(now) * 1000
    local due = tonumber(h[1] or '')
    if due then
      drop_token(k, a.id) -- its reserved token: due now (promoted) or, after a clock step back, soon
    else
      due = draw(k, a, now_ms)
      if due then redis.call('HINCRBY', k.stats, 'rate_limited', 1) end
    end
    if due and not due_now(due, now_ms) then
      local at = string.format('%.3f', due / 1000)
      redis.call('ZADD', qkey(k.job, 'rlw'), due, a.id)
      redis.call('LREM', k.inflight, -1, a.payload)
      park_state(k, a, st, attempt, now)
      redis.call('ZADD', k.scheduled, at, a.payload)
      redis.call('HSET', k.job, 'rl_due', string.format('%.3f', due), 'run_at', at, 'inc', '', 'stage',
                 'rate_limited', 'updated_at', now, 'message', 'rate limit ' .. limit_text(k.rl) .. ': starts at ' .. at)
      return {'scheduled', at}
    end
  end
  if a.cc ~= '' then
    redis.call('ZADD', k.cc, now, a.id)
    redis.call('HSET', k.job, 'cc', a.cc .. '\t' .. k.cc)
    if woken then redis.call('HDEL', k.job, 'cc_wait') end
  end
  return nil
end

-- The job (hash jobkey) gives its slot back (cc: the hash's field, "N<TAB>KEY"): it ended or went back to
-- a queue. The oldest waiter goes to the head of the queue.
LIMITS.release = function(jobkey, id, cc)
  local key = string.match(cc, '^%d+\t(.*)$')
  redis.call('HDEL', jobkey, 'cc')
  if key and redis.call('ZREM', key, id) == 1 then wake(key, 1) end
end

-- A terminal state: the slot and any reserved token go.
LIMITS.terminal = function(k, id, cc, rl_due)
  if cc then LIMITS.release(k.job, id, cc) end
  if rl_due then redis.call('ZREM', qkey(k.job, 'rlw'), id) end
end

-- promote's sweep: for up to 10 keys with waiters, wakes as many as the key has free slots once holders
-- that hold nothing are dropped; forgets keys whose waiting list is empty.
LIMITS.sweep = function(ccq, reaped)
  local moved = 0
  local e = redis.call('HRANDFIELD', ccq, 10, 'WITHVALUES')
  for i = 1, #e, 2 do
    if redis.call('LLEN', cc_wait_key(e[i])) == 0 then
      redis.call('HDEL', ccq, e[i])
    else
      local free = tonumber(e[i + 1]) - prune(e[i], reaped)
      if free > 0 then moved = moved + wake(e[i], free) end
    end
  end
  return moved
end

-- ctl_queues' figures: {jobs waiting for a concurrency slot, jobs waiting for a rate-limit token}.
LIMITS.waiting = function(queue)
  local ccq, n = qkey(queue, 'ccq'), 0
  for _, key in ipairs(redis.call('HKEYS', ccq)) do n = n + redis.call('LLEN', cc_wait_key(key)) end
  return n, redis.call('ZCARD', qkey(queue, 'rlw'))
end
