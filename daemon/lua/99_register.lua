-- (At load time Redis offers only a few globals, not pairs or ipairs: hence the plain list.)
local NAMES = {'fetch', 'claim', 'bury', 'ack', 'run', 'progress', 'finish', 'requeue', 'promote', 'heartbeat',
               'reap', 'return', 'reaped_done', 'reconcile', 'held', 'step_save', 'enqueue', 'wf_restart',
               'celery_take', 'celery_enqueue', 'celery_refuse', 'celery_revoke', 'celery_cancel',
               'celery_revoked', 'celery_reply',
               'ctl_submit', 'ctl_cancel', 'ctl_retry', 'ctl_list', 'ctl_pause', 'ctl_pause_g', 'ctl_queues',
               'ctl_counters', 'ctl_nodes', 'ctl_state',
               'dead_scan', 'dead_retry',
               'sched_put', 'sched_rm', 'sched_pause', 'sched_due', 'sched_fire', 'sched_list', 'sched_show',
               'park', 'wake',
               'token_put', 'token_revoke', 'token_verifier', 'tokens_get', 'shared_ver', 'wf_put', 'wf_rm',
               'event_send', 'event_wait', 'event_list', 'wait_note', 'event_unwait'}

-- Binds KEYS and ARGV to the names SPEC gives them, into one table per operation and kind that is reused
-- by every call (an operation runs to its end before the next starts, and none keeps k or a): building
-- fresh named tables per call, with their rehashes as they grew, cost more than most of the operations'
-- own commands. Every name is assigned on every call (the counts are checked first), so nothing of an
-- earlier call shows through.
local BOUND = {}
local function bound(name)
  local b = BOUND[name]
  if not b then
    local sp = SPEC[name]
    b = {k = {}, a = {}, nk = #sp.keys, na = #sp.args, keys = sp.keys, args = sp.args, vk = sp.vk, va = sp.va}
    BOUND[name] = b
  end
  return b
end

local function slice(list, first, n)
  local t = {}
  for i = 1, n do t[i] = list[first + i - 1] end
  return t
end

-- Runs operation name on keys[kf .. kf+nk-1] and args[af .. af+na-1].
local function run(name, keys, kf, nk, args, af, na)
  local b = bound(name)
  local snk, sna = b.nk, b.na
  if snk > nk or sna > na or (not b.vk and nk ~= snk) or (not b.va and na ~= sna) then
    error('hopper_' .. name .. ': ' .. nk .. ' keys and ' .. na .. ' arguments do not match its SPEC')
  end
  local k, a, kn, an = b.k, b.a, b.keys, b.args
  for i = 1, snk do k[kn[i]] = keys[kf + i - 1] end
  for i = 1, sna do a[an[i]] = args[af + i - 1] end
  return OPS[name](k, a, b.vk and slice(keys, kf, nk) or nil, b.va and slice(args, af + sna, na - sna) or nil)
end

-- The operations of a job's way through a daemon, whose deferred work (DEFER, 00_common.lua) may pile up
-- over a batch: none of them reads what another defers (the index, the counters) or writes a pause flag.
-- Before any other operation of a batch the deferred work is flushed, so it sees every earlier write.
local HOT = {fetch = true, claim = true, bury = true, ack = true, run = true, progress = true, finish = true,
             requeue = true, heartbeat = true}

for i = 1, #NAMES do
  local name = NAMES[i]
  local flags = {}
  if SPEC[name].flags then flags = {SPEC[name].flags} end
  redis.register_function{function_name = 'hopper_' .. name, flags = flags, callback = function(keys, args)
    NOW_CACHE = nil
    local ok, res = pcall(run, name, keys, 1, #keys, args, 1, #args)
    flush_deferred() -- also after an error: the writes made before it stay, and so must their events
    if not ok then error(res, 0) end
    return res
  end}
end

-- hopper_batch(KEYS, n, name, nkeys, nargs, arg..., ...): runs n operations in one call, so a loop turn of
-- hopperd costs one round trip per hash tag whatever the number of jobs. Each operation takes the next nkeys
-- keys. Returns one reply per operation; one that fails yields an error element and does not stop the others.
-- hopper_batch_oom is the same for the operations registered allow-oom (hopperd batches them apart), so
-- finishing jobs works while Redis is at maxmemory.
local function batch(keys, args, oom)
  NOW_CACHE = nil
  local out, i, kf = {}, 2, 1
  for n = 1, num(args[1]) do
    local name, nk, na = args[i], num(args[i + 1]), num(args[i + 2])
    local sp = SPEC[name]
    if not sp or not OPS[name] then
      out[n] = {err = 'unknown hopper operation ' .. tostring(name)}
    elseif oom and sp.flags ~= 'allow-oom' then
      out[n] = {err = 'hopper operation ' .. name .. ' is not allowed under OOM'}
    else
      if not HOT[name] then flush_deferred() end
      local ok, res = pcall(run, name, keys, kf, nk, args, i + 3, na)
      if ok then out[n] = res else out[n] = {err = tostring(res)} end
    end
    i = i + 3 + na
    kf = kf + nk
  end
  flush_deferred()
  return out
end
redis.register_function('hopper_batch', function(keys, args) return batch(keys, args, false) end)
redis.register_function{function_name = 'hopper_batch_oom', flags = {'allow-oom'},
                        callback = function(keys, args) return batch(keys, args, true) end}

-- hopper_spec(): one line per function, "name keys=k,k[,*] args=a,a[,*] flags=F", exactly as
-- `hopperd --functions` prints the C table (tests/e2e/core_functions.sh compares the two).
redis.register_function{function_name = 'hopper_spec', flags = {'no-writes'}, callback = function()
  local out = {}
  for i = 1, #NAMES do
    local sp = SPEC[NAMES[i]]
    out[#out + 1] = NAMES[i] .. ' keys=' .. table.concat(sp.keys, ',') .. (sp.vk and ',*' or '') .. ' args=' ..
                    table.concat(sp.args, ',') .. (sp.va and ',*' or '') .. ' flags=' .. (sp.flags or '-')
  end
  return out
end}
