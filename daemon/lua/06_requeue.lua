-- hopper_requeue(prefix, node, queue, id, payload, now, undo_attempt, ttl, max_events): puts a job this
-- node holds back at the head of its queue (shutdown). undo_attempt = '1' when its attempt was counted
-- but is not its fault. Returns 1, or 0 if the job was no longer in the inflight list.
redis.register_function('hopper_requeue', function(_, a)
  local p, node, q, id, payload, now, undo = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
  local ttl, max_events = tonumber(a[8]), tonumber(a[9])
  if redis.call('LREM', p .. 'inflight:' .. node .. ':' .. q, -1, payload) == 0 then return 0 end
  redis.call('RPUSH', p .. 'queue:' .. q, payload)
  if id == '' then return 1 end
  local h = p .. 'job:' .. id
  local st = redis.call('HGET', h, 'state')
  if st and not TERMINAL[st] then
    redis.call('HSET', h, 'state', 'queued', 'claimed', '', 'updated_at', now, 'progress', 0)
    if undo == '1' then redis.call('HINCRBY', h, 'attempt', -1) end
    emit(p, id, {job = id, event = 'state', state = 'queued', attempt = tonumber(redis.call('HGET', h, 'attempt')),
                 progress = 0, at = tonumber(now)}, max_events, ttl)
  end
  return 1
end)
