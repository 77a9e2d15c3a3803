-- (At load time Redis offers only a few globals, not pairs or ipairs: hence the plain list.)
local NAMES = {'fetch', 'claim', 'run', 'progress', 'finish', 'requeue', 'bury', 'schedule', 'promote',
               'heartbeat', 'reap', 'reconcile',
               'celery_take', 'celery_enqueue', 'celery_refuse', 'step_save', 'enqueue',
               'ctl_submit', 'ctl_cancel', 'ctl_retry', 'ctl_list', 'ctl_pause', 'ctl_queues', 'ctl_stats', 'ctl_paused'}
for k = 1, #NAMES do
  local fn = OPS[NAMES[k]]
  redis.register_function('hopper_' .. NAMES[k], function(_, a) return fn(a) end)
end

-- hopper_batch(n, name, argc, arg..., name, argc, arg..., ...): runs n operations in one call, so a loop
-- turn of hopperd costs one round trip whatever the number of jobs. Returns one reply per operation; an
-- operation that fails yields an error element and does not stop the others.
redis.register_function('hopper_batch', function(_, a)
  local out, i = {}, 2
  for k = 1, tonumber(a[1]) do
    local name, argc = a[i], tonumber(a[i + 1])
    local args = {}
    for j = 1, argc do args[j] = a[i + 1 + j] end
    i = i + 2 + argc
    local fn = OPS[name]
    if not fn then
      out[k] = {err = 'unknown hopper operation ' .. tostring(name)}
    else
      local ok, res = pcall(fn, args)
      if ok then out[k] = res else out[k] = {err = tostring(res)} end
    end
  end
  return out
end)
