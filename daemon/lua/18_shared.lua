-- The deployment's shared control-socket tokens and stored workflows (daemon/shared.c; schema/redis-keys.md).
-- Redis holds the truth for every daemon on it: P{@}:tokens (hash: token id -> JSON with the token's
-- non-secret verifier, name, owner, scopes, created_at and revoked_at), P{@}:token_names (hash: name -> id,
-- names are unique across the deployment) and P{@}:shared_ver (a counter bumped by every write). Each daemon
-- keeps a cache in its SQLite and authenticates from it without asking Redis; it re-reads the set on a
-- notice published on P{@}:shared after each write, and when a periodic read of the counter differs from
-- the version it holds, so a lost notice is caught within that period. Tokens are never deleted: a revoked
-- one stays for the audit trail, as in SQLite.

-- At most this many tokens: one tokens_get reads them all, so the set stays small enough for one reply.
local TOKENS_MAX = 10000

-- Bumps the version and tells every daemon that the set changed. Returns the new version.
local function shared_changed(k)
  local ver = redis.call('INCR', k.g_shver)
  redis.call('PUBLISH', key_prefix(k.g_shver) .. '{@}:shared', '{"kind":"tokens","ver":' .. ver .. '}')
  return ver
end

SPEC.token_put = {keys = {'g_tokens', 'g_toknames', 'g_shver'},
                  args = {'id', 'name', 'owner', 'scopes', 'verifier', 'created_at', 'revoked_at', 'replace'}}
-- Adds a token. created_at '' = now (Redis's clock); revoked_at '' = not revoked (an imported one keeps its
-- times). replace '1' (hopperd --migrate-shared --force) overwrites an entry of the same id. A name held by
-- another id answers {'name_taken'}, an existing id without replace {'id_taken'}, a full set {'limit'}.
-- Returns {'ok', ver, created_at}.
OPS.token_put = function(k, a)
  local holder = redis.call('HGET', k.g_toknames, a.name)
  if holder and holder ~= a.id then return {'name_taken'} end
  local old = redis.call('HGET', k.g_tokens, a.id)
  if old and a.replace ~= '1' then return {'id_taken'} end
  if not old and redis.call('HLEN', k.g_tokens) >= TOKENS_MAX then return {'limit'} end
  if old then -- a replaced entry may have had another name
    local was = cjson.decode(old).name
    if was ~= a.name and redis.call('HGET', k.g_toknames, was) == a.id then redis.call('HDEL', k.g_toknames, was) end
  end
  local created = a.created_at
  if created == '' then created = clock() end
  local t = {id = a.id, name = a.name, owner = a.owner, scopes = a.scopes, verifier = a.verifier,
             created_at = tonumber(created)}
  if a.revoked_at ~= '' then t.revoked_at = tonumber(a.revoked_at) end
  redis.call('HSET', k.g_tokens, a.id, cjson.encode(t))
  redis.call('HSET', k.g_toknames, a.name, a.id)
  return {'ok', tostring(shared_changed(k)), created}
end

SPEC.token_revoke = {keys = {'g_tokens', 'g_shver'}, args = {'id'}, flags = 'allow-oom'}
-- Revokes a token (at Redis's clock). Returns {'ok', ver, revoked_at}, {'already', ver, revoked_at} or
-- {'absent'}.
OPS.token_revoke = function(k, a)
  local old = redis.call('HGET', k.g_tokens, a.id)
  if not old then return {'absent'} end
  local t = cjson.decode(old)
  if t.revoked_at then
    return {'already', tostring(redis.call('GET', k.g_shver) or '0'), string.format('%.3f', t.revoked_at)}
  end
  local now = clock()
  t.revoked_at = tonumber(now)
  redis.call('HSET', k.g_tokens, a.id, cjson.encode(t))
  return {'ok', tostring(shared_changed(k)), now}
end

SPEC.token_verifier = {keys = {'g_tokens', 'g_shver'}, args = {'id', 'old', 'new'}, flags = 'allow-oom'}
-- Replaces a token's verifier if it still is `old`: a token stored before protocol 2 (its BLAKE2b hash)
-- gets its protocol-2 verifier at its first unix-socket use. Returns {'ok', ver} or {'unchanged'}.
OPS.token_verifier = function(k, a)
  local old = redis.call('HGET', k.g_tokens, a.id)
  if not old then return {'unchanged'} end
  local t = cjson.decode(old)
  if t.verifier ~= a.old then return {'unchanged'} end
  t.verifier = a.new
  redis.call('HSET', k.g_tokens, a.id, cjson.encode(t))
  return {'ok', tostring(shared_changed(k))}
end

SPEC.tokens_get = {keys = {'g_tokens', 'g_workflows', 'g_shver'}, args = {}, flags = 'no-writes'}
-- The whole shared set and its version, read at once: {ver, {id, json, ...}, {name, json, ...}} (tokens,
-- then stored workflows).
OPS.tokens_get = function(k)
  return {tostring(redis.call('GET', k.g_shver) or '0'), redis.call('HGETALL', k.g_tokens),
          redis.call('HGETALL', k.g_workflows)}
end

-- Stored workflows (daemon/ctl/ctl_workflow.c): P{@}:workflows, name -> JSON {name, description, definition
-- (JSON text), owner, active, created_at, updated_at}; the SQLite workflows table is each daemon's cache.
local WORKFLOWS_MAX = 10000

SPEC.wf_put = {keys = {'g_workflows', 'g_shver'},
               args = {'name', 'description', 'definition', 'owner', 'active', 'created_at', 'updated_at'}}
-- Stores or replaces a workflow (the caller checked the owner against its cache). created_at / updated_at
-- '' = Redis's clock (a replace keeps the first created_at). Returns {'created' | 'replaced', ver,
-- created_at, updated_at} or {'limit'}.
OPS.wf_put = function(k, a)
  local old = redis.call('HGET', k.g_workflows, a.name)
  if not old and redis.call('HLEN', k.g_workflows) >= WORKFLOWS_MAX then return {'limit'} end
  local now = clock()
  local created = a.created_at
  if created == '' then
    if old then created = string.format('%.3f', cjson.decode(old).created_at) else created = now end
  end
  local updated = a.updated_at
  if updated == '' then updated = now end
  local w = {name = a.name, definition = a.definition, owner = a.owner, active = (a.active == '1'),
             created_at = tonumber(created), updated_at = tonumber(updated)}
  if a.description ~= '' then w.description = a.description end
  redis.call('HSET', k.g_workflows, a.name, cjson.encode(w))
  local ver = redis.call('INCR', k.g_shver)
  redis.call('PUBLISH', key_prefix(k.g_shver) .. '{@}:shared', '{"kind":"workflows","ver":' .. ver .. '}')
  return {old and 'replaced' or 'created', tostring(ver), created, updated}
end

SPEC.wf_rm = {keys = {'g_workflows', 'g_shver'}, args = {'name'}, flags = 'allow-oom'}
-- Removes a stored workflow. Returns {'ok', ver} or {'absent'}.
OPS.wf_rm = function(k, a)
  if redis.call('HDEL', k.g_workflows, a.name) == 0 then return {'absent'} end
  local ver = redis.call('INCR', k.g_shver)
  redis.call('PUBLISH', key_prefix(k.g_shver) .. '{@}:shared', '{"kind":"workflows","ver":' .. ver .. '}')
  return {'ok', tostring(ver)}
end

SPEC.shared_ver = {keys = {'g_shver'}, args = {}, flags = 'no-writes'}
-- The set's version ('0' before the first write): the periodic check compares it with the cache's.
OPS.shared_ver = function(k)
  return tostring(redis.call('GET', k.g_shver) or '0')
end
