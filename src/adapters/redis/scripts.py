"""The job store's Lua scripts: every state change runs as one script, so the status check and the
write are atomic (see job_store for the key layout).

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
)
SNAPSHOT = "local function snapshot(key) return redis.call('HMGET', key, {}) end\n".format(
    ", ".join(f"'{f}'" for f in FIELDS)
)

# KEYS: job, leases. ARGV: id, lease ('' = none), then field/value pairs.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
return 1
"""

# KEYS: job, leases. ARGV: id, now, owner, lease.
START = (
    SNAPSHOT
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'queued' then return {'illegal', status} end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[2], 'owner', ARGV[3],
           'lease_expires_at', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return {'ok', snapshot(KEYS[1]), redis.call('HGET', KEYS[1], 'result')}
"""
)

# KEYS: job, leases. ARGV: id, lease, progress ('' = none), '1' when a message is given, message.
HEARTBEAT = (
    SNAPSHOT
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status == 'queued' or status == 'running' then
  local lease = redis.call('HGET', KEYS[1], 'lease_expires_at')
  if (not lease) or tonumber(ARGV[2]) > tonumber(lease) then
    redis.call('HSET', KEYS[1], 'lease_expires_at', ARGV[2])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  end
  if status == 'running' then
    if ARGV[3] ~= '' then
      local progress = tonumber(redis.call('HGET', KEYS[1], 'progress') or '0')
      if tonumber(ARGV[3]) > progress then redis.call('HSET', KEYS[1], 'progress', ARGV[3]) end
    end
    if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'message', ARGV[5]) end
  end
end
return {'ok', snapshot(KEYS[1]), redis.call('HGET', KEYS[1], 'result')}
"""
)

# KEYS: job, leases. ARGV: id, status, now, ttl ms, result, error code, error message.
FINISH = (
    SNAPSHOT
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'queued' and status ~= 'running' then return {'illegal', status} end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'finished_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'lease_expires_at')
if ARGV[2] == 'completed' then redis.call('HSET', KEYS[1], 'progress', '1.0', 'result', ARGV[5]) end
if ARGV[2] == 'failed' then redis.call('HSET', KEYS[1], 'error_code', ARGV[6], 'error_message', ARGV[7]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'ok', snapshot(KEYS[1])}
"""
)

# KEYS: leases. ARGV: now, job key prefix, error code, error message, ttl ms, batch size.
REAP = (
    SNAPSHOT
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[6]))
local reaped = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[2] .. id
  local status = redis.call('HGET', key, 'status')
  if status == 'queued' or status == 'running' then
    redis.call('HSET', key, 'status', 'failed', 'finished_at', ARGV[1], 'error_code', ARGV[3],
               'error_message', ARGV[4])
    redis.call('HDEL', key, 'lease_expires_at')
    redis.call('PEXPIRE', key, ARGV[5])
    table.insert(reaped, snapshot(key))
  end
end
return {#ids, reaped}
"""
)

# A result up to this size comes back with the job in one round trip; a larger one is read on its
# own, with a deadline sized to it.
INLINE_RESULT_BYTES = 262_144

# KEYS: job. ARGV: the largest result returned inline. Returns {} for an unknown job, else the
# snapshot, the result's length and, when it is small enough, the result.
READ = (
    SNAPSHOT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local size = redis.call('HSTRLEN', KEYS[1], 'result')
local result = false
if size > 0 and size <= tonumber(ARGV[1]) then result = redis.call('HGET', KEYS[1], 'result') end
return {snapshot(KEYS[1]), size, result}
"""
)
