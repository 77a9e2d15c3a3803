SPEC.reconcile = {keys = {'inflight', 'queue'}, args = {}, va = true, flags = 'allow-oom'}
-- After a lost connection, a fetch whose reply never arrived may have left messages in this node's inflight
-- list that hopperd does not know about. Every entry that is not among the held payloads (the extra
-- arguments; a multiset: identical messages count separately) goes back to the head of the queue, oldest
-- nearest the head. Returns how many moved.
OPS.reconcile = function(k, a, keys, args)
  local held = {}
  for i = 1, #args do held[args[i]] = (held[args[i]] or 0) + 1 end
  local moved = 0
  local items = redis.call('LRANGE', k.inflight, '0', '-1')
  for i = 1, #items do
    local v = items[i]
    if (held[v] or 0) > 0 then
      held[v] = held[v] - 1
    else
      redis.call('LREM', k.inflight, '-1', v)
      redis.call('RPUSH', k.queue, v)
      moved = moved + 1
    end
  end
  return moved
end

SPEC.held = {keys = {}, vk = true, args = {}, va = true, flags = 'no-writes'}
-- The state and fencing token of held jobs (keys: their hashes; read-only): {state, fence, ...} per key,
-- '' for a missing hash. hopperd asks after every resubscribe, so a cancel published while the pub/sub link
-- was down still stops the job, and an attempt superseded meanwhile stops too.
OPS.held = function(k, a, keys)
  local out = {}
  for i = 1, #keys do
    local f = redis.call('HMGET', keys[i], 'state', 'fence')
    out[#out + 1] = f[1] or ''
    out[#out + 1] = f[2] or ''
  end
  return out
end
