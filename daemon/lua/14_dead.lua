-- `dead retry --all` in bounded chunks (daemon/ctl/ctl_dead.c; schema/control-protocol.md, op dead.retry).
-- A run walks one queue's dead set (score = time of death) in (score, id) order, from a cursor, up to a
-- fixed bound `upto` (Redis's clock when the run began): a job that dies after the run began, or dies again
-- after this run retried it, has a later score and is not met. Two calls per chunk, so that every key is
-- declared: dead_scan (read-only) names the next ids, hopperd builds their job and events keys, dead_retry
-- re-checks each one (still in the dead set, within the bound, dead, visible, matching the filters, not
-- retried by this run already: the run's token in the hash covers a re-death within the same millisecond)
-- and retries it like ctl_retry.

-- a > b in byte order, as Redis orders members of one score (Lua's < follows the server's LC_COLLATE).
local function bytes_after(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

SPEC.dead_scan = {keys = {'dead'}, args = {'upto', 'older_s', 'score', 'cursor_id', 'limit'}, flags = 'no-writes'}
-- Up to limit ids of the dead set after (score, cursor_id) (score '' = from the start) with a score at most
-- upto - older_s (upto '' = now: a new run). Entries of one score (one batch's deaths) are read in pages
-- of 500, so a chunk costs O(limit + ties). Returns {upto, ended, id, score, id, score, ...}; ended = 1 when
-- nothing is left after the last id returned.
OPS.dead_scan = function(k, a)
  local untl = a.upto
  if untl == '' then untl = clock() end
  local upper = tonumber(untl) - tonumber(a.older_s)
  local limit = tonumber(a.limit)
  local out = {untl, 0}
  local n = 0
  local function take(list)
    for i = 1, #list, 2 do
      if n >= limit then return true end
      out[#out + 1] = list[i]
      out[#out + 1] = list[i + 1]
      n = n + 1
    end
    return false
  end
  local full = false
  if a.score ~= '' then
    local s = tonumber(a.score)
    if s <= upper then
      local off = 0
      while not full do -- the ties after cursor_id (same score: members in byte order)
        local page = redis.call('ZRANGEBYSCORE', k.dead, a.score, a.score, 'WITHSCORES', 'LIMIT', off, 500)
        if #page == 0 then break end
        local rest = {}
        for i = 1, #page, 2 do
          if bytes_after(page[i], a.cursor_id) then
            rest[#rest + 1] = page[i]
            rest[#rest + 1] = page[i + 1]
          end
        end
        full = take(rest)
        off = off + 500
      end
    end
  end
  local min = '-inf'
  if a.score ~= '' then min = '(' .. a.score end
  if not full then -- one more than fits, to know whether any is left
    full = take(redis.call('ZRANGEBYSCORE', k.dead, min, upper, 'WITHSCORES', 'LIMIT', 0, limit - n + 1))
  end
  if not full then out[2] = 1 end
  return out
end

SPEC.dead_retry = {keys = {'queue', 'dead', 'deadmsg', 'jobs'}, vk = true,
                   args = {'token', 'upto', 'older_s', 'owner', 'admin', 'type', 'error', 'ttl', 'max_events'},
                   va = true}
-- Retries the given ids (extra arguments) of one queue; extra keys: per id its job and events keys. Each is
-- retried only if it is still in the dead set with a score at most upto - older_s, its hash says dead and
-- still has its payload, the caller may see it (admin = '1' or the owner's), its type equals `type` and
-- its error contains `error` (plain text; '' = any), this run (token) did not retry it before, and no other
-- live job holds its unique lock (FLOW.retake takes it again; a job whose lock is held stays dead).
-- Returns the number retried.
OPS.dead_retry = function(k, a, keys, ids)
  local upper, now, n = tonumber(a.upto) - tonumber(a.older_s), clock(), 0
  for i = 1, #ids do
    local id = ids[i]
    local jk = {job = keys[3 + 2 * i], events = keys[4 + 2 * i], jobs = k.jobs}
    local sc = redis.call('ZSCORE', k.dead, id)
    local f = redis.call('HMGET', jk.job, 'state', 'payload', 'owner', 'type', 'error', 'retry_run', 'flow')
    if sc and tonumber(sc) <= upper and f[1] == 'dead' and f[2] and (a.admin == '1' or f[3] == a.owner) and
       (a.type == '' or f[4] == a.type) and (a.error == '' or (f[5] and string.find(f[5], a.error, 1, true))) and
       f[6] ~= a.token and not (f[7] and FLOW.retake(id, jk.job, f[7])) then
      redis.call('HSET', jk.job, 'state', 'queued', 'attempt', '0', 'progress', '0', 'stage', '', 'message', '',
                 'enqueued_at', now, 'updated_at', now, 'stalls', '0', 'inc', '', 'retry_run', a.token)
      redis.call('HDEL', jk.job, 'error', 'finished_at', 'result', 'run_at')
      redis.call('PERSIST', jk.job)
      redis.call('PERSIST', jk.events)
      emit(jk, event_json(id, 'state', 'queued', '0', '0', now), a.max_events, a.ttl, false)
      redis.call('RPUSH', k.queue, f[2])
      index_add(jk, id, now, a.ttl)
      redis.call('ZREM', k.dead, id)
      redis.call('HDEL', k.deadmsg, id)
      n = n + 1
    end
  end
  return n
end
