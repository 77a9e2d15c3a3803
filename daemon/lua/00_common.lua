-- hopper's Redis functions. All files in daemon/lua are concatenated, in name order, into one function
-- library ("hopper") that hopperd loads with FUNCTION LOAD REPLACE on every connect. Every function takes
-- the key prefix as its first argument and builds key names itself (see schema/redis-keys.md), so hopper
-- needs a standalone Redis (or one primary), not a cluster. Each function is atomic: a job leaves a list
-- in the same step that records where it went.

local TERMINAL = {succeeded = true, failed = true, dead = true, cancelled = true}

-- Every operation, by name; 99_register.lua registers each as hopper_NAME, and hopper_batch runs many.
local OPS = {}

-- Appends an event to the job's bounded, expiring event list and publishes it on the job's own channel
-- and on the global events channel.
local function emit(p, id, ev, max_events, ttl)
  local js = cjson.encode(ev)
  local k = p .. 'job:' .. id .. ':events'
  redis.call('RPUSH', k, js)
  redis.call('LTRIM', k, -max_events, -1)
  redis.call('EXPIRE', k, ttl)
  redis.call('PUBLISH', p .. 'job:' .. id, js)
  redis.call('PUBLISH', p .. 'events', js)
end

-- Writes a terminal state onto an existing job hash, lets it expire, counts it and announces it.
local function finish_terminal(p, id, state, now, err, max_events, ttl)
  local h = p .. 'job:' .. id
  redis.call('HSET', h, 'state', state, 'error', err, 'finished_at', now, 'updated_at', now)
  redis.call('EXPIRE', h, ttl)
  redis.call('HINCRBY', p .. 'stats', state, 1)
  local attempt = tonumber(redis.call('HGET', h, 'attempt')) or 0
  local progress = tonumber(redis.call('HGET', h, 'progress')) or 0
  emit(p, id, {job = id, event = 'state', state = state, attempt = attempt, progress = progress,
               error = err, at = tonumber(now)}, max_events, ttl)
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
