"""The job store's Lua scripts for one job's lifecycle (start, heartbeat, finish, read) and the
helpers every transition shares; the queue's scripts (create, claim, requeue, reap) are in
queue_scripts. Every state change runs as one script, so the status check and the write are atomic
(see job_store for the key layout).

Every transition script takes the store's shared keys first, in the order of SHARED_KEYS, then its
job's own keys, so the helpers below can name them as KEYS[1] to KEYS[5].

Scripts compare numbers with `tonumber` but only ever store strings Python formatted, because Lua
would print doubles with 14 digits and lose precision.
"""

from __future__ import annotations

# The attributes scripts hand back (everything but the result, which can be megabytes).
FIELDS = (
    "id",
    "type",
    "status",
    "created_at",
    "progress",
    "message",
    "started_at",
    "finished_at",
    "error_code",
    "error_message",
    "owner",
    "lease_expires_at",
    "attempts",
    "tenant_id",
)

# KEYS[1..5] of every transition script: the queue (queued ids by created_at), the leases (active
# ids by lease expiry), the running jobs (id -> tenant), the running count by tenant, the queue
# statistics.
SHARED_KEYS = ("queue", "leases", "running", "running_by_tenant", "queue_stats")

# A payload or result up to this size comes back with its job in one round trip; a larger one is
# read on its own, with a deadline sized to it.
INLINE_BYTES = 262_144

PRELUDE = (
    "local function snapshot(key) return redis.call('HMGET', key, {}) end\n".format(
        ", ".join(f"'{f}'" for f in FIELDS)
    )
    + """
-- A job starts or stops running: the running hash (id -> its tenant, '' for none) and the tenant's
-- count follow. A count that reaches 0 loses its field, so the hash of counts holds only tenants
-- that run something, and never goes below 0. Releasing reads the tenant from the running hash,
-- so a job that never entered it (a record written before the queue) takes nothing off.
local function occupy(id, tenant)
  if redis.call('HSETNX', KEYS[3], id, tenant or '') == 1 and tenant then
    redis.call('HINCRBY', KEYS[4], tenant, 1)
  end
end
local function release(id)
  local tenant = redis.call('HGET', KEYS[3], id)
  if not tenant then return end
  redis.call('HDEL', KEYS[3], id)
  if tenant ~= '' and redis.call('HINCRBY', KEYS[4], tenant, -1) <= 0 then
    redis.call('HDEL', KEYS[4], tenant)
  end
end

-- A job's payload goes, and its bytes leave the queue's count: the size its job recorded (what
-- was counted, even if the payload key was evicted), else the key's own (a job hash gone).
local function drop_payload(key, payload_key)
  local size = tonumber(redis.call('HGET', key, 'payload_bytes') or redis.call('STRLEN', payload_key))
  redis.call('HDEL', key, 'payload_bytes')
  redis.call('DEL', payload_key)
  if size > 0 and redis.call('HINCRBY', KEYS[5], 'payload_bytes', -size) <= 0 then
    redis.call('HDEL', KEYS[5], 'payload_bytes')
  end
end

-- What a job left behind that is no longer where the queue's keys say it is: ended by a replica
-- whose scripts predate the queue (they know neither the running count nor payloads), or gone.
local function settle(key, payload_key, id)
  local status = redis.call('HGET', key, 'status')
  if status ~= 'running' then release(id) end
  if status ~= 'queued' and status ~= 'running' then
    drop_payload(key, payload_key)
    local idem, ttl = redis.call('HGET', key, 'idem_key'), redis.call('PTTL', key)
    if idem and ttl > 0 and redis.call('GET', idem) == id then redis.call('PEXPIRE', idem, ttl) end
  end
end

-- queued -> running for owner until lease (one more attempt).
local function begin(key, id, now, owner, lease)
  redis.call('HSET', key, 'status', 'running', 'started_at', now, 'owner', owner, 'lease_expires_at', lease)
  redis.call('HINCRBY', key, 'attempts', 1)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], lease, id)
  occupy(id, redis.call('HGET', key, 'tenant_id'))
end

-- running -> queued as if never started (Job.requeued), back in its place by created_at.
local function requeue(key, id, refund)
  redis.call('HSET', key, 'status', 'queued', 'progress', '0.0', 'message', '')
  redis.call('HDEL', key, 'started_at', 'owner', 'lease_expires_at')
  if refund then
    local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
    if attempts > 0 then redis.call('HSET', key, 'attempts', tostring(attempts - 1)) end
  end
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], redis.call('HGET', key, 'created_at'), id)
  release(id)
end

-- An active job becomes final: out of the queue, the leases and the running count, its payload
-- and its bytes dropped, the job (and its idempotency key) expiring after ttl ms.
local function finalize(key, payload_key, id, status, now, ttl)
  release(id)
  redis.call('HSET', key, 'status', status, 'finished_at', now)
  redis.call('HDEL', key, 'lease_expires_at')
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  drop_payload(key, payload_key)
  redis.call('PEXPIRE', key, ttl)
  local idem = redis.call('HGET', key, 'idem_key')
  if idem and redis.call('GET', idem) == id then redis.call('PEXPIRE', idem, ttl) end
end
"""
)

# KEYS: shared, job. ARGV: id, now, owner, lease.
START = (
    PRELUDE
    + """
local status = redis.call('HGET', KEYS[6], 'status')
if not status then return {'missing'} end
if status ~= 'queued' then return {'illegal', status} end
begin(KEYS[6], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return {'ok', snapshot(KEYS[6])}
"""
)

# KEYS: shared, job. ARGV: id, owner, lease, progress ('' = none), '1' when a message is given,
# message, the largest result returned inline. Only a job running under owner changes; any other
# is returned as it is, with its result's length and, when small enough, its result.
HEARTBEAT = (
    PRELUDE
    + """
local held = redis.call('HMGET', KEYS[6], 'status', 'owner', 'lease_expires_at', 'progress')
if not held[1] then return {'missing'} end
if held[1] == 'running' and held[2] == ARGV[2] then
  if (not held[3]) or tonumber(ARGV[3]) > tonumber(held[3]) then
    redis.call('HSET', KEYS[6], 'lease_expires_at', ARGV[3])
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  end
  if ARGV[4] ~= '' and tonumber(ARGV[4]) > tonumber(held[4] or '0') then
    redis.call('HSET', KEYS[6], 'progress', ARGV[4])
  end
  if ARGV[5] == '1' then redis.call('HSET', KEYS[6], 'message', ARGV[6]) end
end
local size = redis.call('HSTRLEN', KEYS[6], 'result')
local result = false
if size > 0 and size <= tonumber(ARGV[7]) then result = redis.call('HGET', KEYS[6], 'result') end
return {'ok', snapshot(KEYS[6]), size, result}
"""
)

# KEYS: shared, job, payload. ARGV: id, status, now, ttl ms, result, error code, error message,
# '1' when only owner may finish it, owner.
FINISH = (
    PRELUDE
    + """
local held = redis.call('HMGET', KEYS[6], 'status', 'owner')
if not held[1] then return {'missing'} end
if held[1] ~= 'queued' and held[1] ~= 'running' then return {'illegal', held[1]} end
if ARGV[8] == '1' then
  -- Only the replica running this attempt writes its outcome: a queued job has none yet.
  if held[1] ~= 'running' then return {'illegal', held[1]} end
  if held[2] ~= ARGV[9] then return {'not_owner', held[1]} end
end
finalize(KEYS[6], KEYS[7], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if ARGV[2] == 'completed' then redis.call('HSET', KEYS[6], 'progress', '1.0', 'result', ARGV[5]) end
if ARGV[2] == 'failed' then redis.call('HSET', KEYS[6], 'error_code', ARGV[6], 'error_message', ARGV[7]) end
return {'ok', snapshot(KEYS[6])}
"""
)

# KEYS: job. ARGV: the largest result returned inline. Returns {} for an unknown job, else the
# snapshot, the result's length and, when it is small enough, the result.
READ = (
    PRELUDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local size = redis.call('HSTRLEN', KEYS[1], 'result')
local result = false
if size > 0 and size <= tonumber(ARGV[1]) then result = redis.call('HGET', KEYS[1], 'result') end
return {snapshot(KEYS[1]), size, result}
"""
)

# KEYS: payload. ARGV: the largest payload returned inline. Returns {} without a payload, else its
# length and, when it is small enough, the payload.
READ_PAYLOAD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local size = redis.call('STRLEN', KEYS[1])
local payload = false
if size <= tonumber(ARGV[1]) then payload = redis.call('GET', KEYS[1]) end
return {size, payload}
"""
