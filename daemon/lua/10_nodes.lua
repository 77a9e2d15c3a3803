-- Node liveness, all under the deployment-wide tag {@}. Per node id: seen (Redis time, ms, of its last
-- heartbeat), since (start of its current unbroken run of heartbeats), seq (its heartbeat sequence number),
-- inc (its incarnation: a new one at every process start), nodeq (the queues it consumes), hb (display JSON
-- written by hopperd). reaping: incarnations whose inflight lists are being returned -> "node\nqueues".
--
-- A node is reaped only by a reaper that saw it silent for a whole lease while the reaper itself was
-- heartbeating without a break: reap N iff now - max(seen[N], since[self]) > lease. After a Redis outage (or
-- a stopped Redis) every node's `since` restarts, so nobody is reaped for the outage itself. A heartbeat with
-- a seq not above the stored one (a command left on a connection hopperd abandoned, run late) changes
-- nothing, and reap runs only for the reaper's latest heartbeat.

local NODE_KEYS = {'seen', 'since', 'seq', 'inc', 'nodeq', 'hb'} -- k.g_seen ... k.g_hb

local function forget(k, node)
  for _, name in ipairs(NODE_KEYS) do redis.call('HDEL', k['g_' .. name], node) end
end

SPEC.heartbeat = {keys = {'g_seen', 'g_since', 'g_seq', 'g_inc', 'g_nodeq', 'g_hb', 'g_reaping', 'g_queues'},
                  args = {'node', 'inc', 'seq', 'lease_ms', 'gap_ms', 'check', 'hb', 'queues'}, flags = 'allow-oom'}
-- check: '1' registration (start-up), '2' registration taking over an id whose holder is gone, '0' a
-- running daemon's beat. Returns {'ok'}; {'held', hb} (registration: a live heartbeat of another incarnation
-- holds the id); {'reaped'} (this incarnation was reaped: it must stop its attempts and register again);
-- {'stale'} (an old beat: ignored). A registration hands the id's previous incarnation to reaping.
OPS.heartbeat = function(k, a)
  local now = clock_ms()
  local f = {}
  for _, name in ipairs(NODE_KEYS) do f[name] = redis.call('HGET', k['g_' .. name], a.node) end
  if a.check == '1' and f.inc and f.inc ~= a.inc and f.seen and now - tonumber(f.seen) <= tonumber(a.lease_ms) then
    return {'held', f.hb or '{}'}
  end
  if a.check ~= '0' then
    if f.inc and f.inc ~= a.inc then redis.call('HSET', k.g_reaping, f.inc, a.node .. '\n' .. (f.nodeq or '')) end
  else
    if f.inc ~= a.inc then return {'reaped'} end
    if f.seq and tonumber(a.seq) <= tonumber(f.seq) then return {'stale'} end
  end
  if a.check ~= '0' or not f.seen or now - tonumber(f.seen) > tonumber(a.gap_ms) then
    redis.call('HSET', k.g_since, a.node, string.format('%.0f', now))
  end
  redis.call('HSET', k.g_seen, a.node, string.format('%.0f', now))
  redis.call('HSET', k.g_seq, a.node, a.seq)
  redis.call('HSET', k.g_inc, a.node, a.inc)
  redis.call('HSET', k.g_nodeq, a.node, a.queues)
  redis.call('HSET', k.g_hb, a.node, a.hb)
  for q in string.gmatch(a.queues, '[^,]+') do redis.call('SADD', k.g_queues, q) end
  return {'ok'}
end

SPEC.reap = {keys = {'g_seen', 'g_since', 'g_seq', 'g_inc', 'g_nodeq', 'g_hb', 'g_reaping'},
             args = {'node', 'inc', 'seq', 'lease_ms'}, flags = 'allow-oom'}
-- Moves every node silent for a lease (see above) to reaping, then returns all of reaping flattened:
-- {inc, "node\nqueues", ...}; hopperd returns each queue's inflight list (hopper_return) and then drops the
-- entry (hopper_reaped_done). Entries left by a reaper that died midway are returned by the next reap.
OPS.reap = function(k, a)
  if redis.call('HGET', k.g_inc, a.node) ~= a.inc or redis.call('HGET', k.g_seq, a.node) ~= a.seq then return {} end
  local now, lease = clock_ms(), tonumber(a.lease_ms)
  local since = tonumber(redis.call('HGET', k.g_since, a.node) or now)
  local seen = redis.call('HGETALL', k.g_seen)
  for i = 1, #seen, 2 do
    local n, t = seen[i], tonumber(seen[i + 1])
    if n ~= a.node and now - math.max(t, since) > lease then
      local inc = redis.call('HGET', k.g_inc, n) or (n .. '/?')
      redis.call('HSET', k.g_reaping, inc, n .. '\n' .. (redis.call('HGET', k.g_nodeq, n) or ''))
      forget(k, n)
    end
  end
  return redis.call('HGETALL', k.g_reaping)
end

SPEC['return'] = {keys = {'inflight', 'queue', 'reaped'}, args = {'inc', 'ttl'}, flags = 'allow-oom'}
-- Returns a reaped incarnation's inflight list of one queue to the head of the queue, oldest nearest the
-- head, and records the incarnation in the queue's reaped set (claim then counts a job it left running as a
-- stall, not as a duplicate). The set keeps ttl seconds of incarnations. Returns how many moved.
OPS['return'] = function(k, a)
  local now = clock()
  redis.call('ZADD', k.reaped, now, a.inc)
  redis.call('ZREMRANGEBYSCORE', k.reaped, '-inf', '(' .. (tonumber(now) - tonumber(a.ttl)))
  local moved = 0
  while redis.call('LMOVE', k.inflight, k.queue, 'LEFT', 'RIGHT') do moved = moved + 1 end
  return moved
end

SPEC.reaped_done = {keys = {'g_reaping'}, args = {'node', 'inc'}, flags = 'allow-oom'}
OPS.reaped_done = function(k, a)
  return redis.call('HDEL', k.g_reaping, a.inc)
end
