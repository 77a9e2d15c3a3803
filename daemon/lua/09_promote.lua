SPEC.promote = {keys = {'scheduled', 'queue', 'ccq', 'reaped'}, args = {'limit'}, flags = 'allow-oom'}
-- Moves up to limit due delayed jobs and retries (due by Redis's clock) to the head of the queue. Safe with
-- several daemons: the move is atomic, so each due job is promoted once. Also hands slots of concurrency
-- keys that no one holds any longer to their waiters (17_limits.lua). Returns how many moved.
OPS.promote = function(k, a)
  local moved = 0
  for _, v in ipairs(redis.call('ZRANGEBYSCORE', k.scheduled, '-inf', clock(), 'LIMIT', 0, tonumber(a.limit))) do
    redis.call('ZREM', k.scheduled, v)
    redis.call('RPUSH', k.queue, v)
    moved = moved + 1
  end
  return moved + LIMITS.sweep(k.ccq, k.reaped)
end
