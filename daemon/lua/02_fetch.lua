-- hopper_fetch(prefix, node, max, max_stalls, ttl, max_events, default_max_attempts, now, queue...):
-- moves up to max jobs from the queues, in the order given, into this node's inflight lists, and claims
-- each one whose JSON names a usable id (see claim_job), all in one round trip. Returns a flat list of
-- {queue, job, verdict, detail} with verdict 'raw' (not claimed: hopperd validates it, gives it an id
-- or buries it) or claim_job's verdict.
local function str_or(v, default)
  if type(v) == 'string' and v ~= '' then return v end
  return default
end

OPS.fetch = function(a)
  local p, node, n, max_stalls, ttl, max_events = a[1], a[2], tonumber(a[3]), tonumber(a[4]), a[5], a[6]
  local default_attempts, now = a[7], a[8]
  local out = {}
  for i = 9, #a do
    local q = a[i]
    local src, dst = p .. 'queue:' .. q, p .. 'inflight:' .. node .. ':' .. q
    -- A paused queue (control socket: pause) is not fetched from.
    local paused = redis.call('SISMEMBER', p .. 'paused', q) == 1
    while n > 0 and not paused do
      local v = redis.call('LMOVE', src, dst, 'RIGHT', 'LEFT')
      if not v then break end
      local ok, m = pcall(cjson.decode, v)
      local verdict = {'raw', ''}
      if ok and type(m) == 'table' and type(m.id) == 'string' and #m.id <= 128 and
         m.id:match('^[%w%.:_%-]+$') and type(m.type) == 'string' then
        local attempts = default_attempts
        if type(m.max_attempts) == 'number' then attempts = tostring(m.max_attempts) end
        local created = now
        if type(m.created_at) == 'number' then created = string.format('%.3f', m.created_at) end
        verdict = claim_job(p, node, q, m.id, now, m.type, attempts, max_stalls, v, created,
                            str_or(m.owner, ''), str_or(m.idempotency_key, ''), ttl, max_events)
      end
      out[#out + 1] = q
      out[#out + 1] = v
      out[#out + 1] = verdict[1]
      out[#out + 1] = tostring(verdict[2])
      n = n - 1
    end
    if n <= 0 then break end
  end
  return out
end
