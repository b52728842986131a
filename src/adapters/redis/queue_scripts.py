"""The job store's Lua scripts for the queue: create (limits and idempotency checked in the same
step as the write), claim, requeue, reap, and the depth. KEYS start with scripts.SHARED_KEYS."""

from __future__ import annotations

from adapters.redis.scripts import PRELUDE

# How many queued ids a claim reads at a time, and at most per script call: a queue whose head is
# all capped tenants or formats this replica cannot run is walked over several calls, so that no
# one script holds Redis for long.
CLAIM_WINDOW = 200
CLAIM_SCAN_PER_CALL = 2000

# KEYS: shared, job, payload, idempotency key, staged payload. ARGV: id, created_at, lease
# ('' = none), max queued jobs ('' = none), max queued bytes ('' = none), payload mode ('none',
# 'inline' or 'staged'), the payload (inline) or its size (staged), '1' with an idempotency key,
# job key prefix, then the job's field/value pairs.
# A staged payload was written beforehand to its own key (a large one would otherwise be copied
# into the script's memory); it is renamed into place, or deleted when the job is refused.
CREATE = """
local function refuse(reply)
  if ARGV[6] == 'staged' then redis.call('DEL', KEYS[9]) end
  return reply
end
if ARGV[8] == '1' then
  local existing = redis.call('GET', KEYS[8])
  if existing and redis.call('EXISTS', ARGV[9] .. existing) == 1 then
    return refuse({'existing', existing})
  end
end
if redis.call('EXISTS', KEYS[6]) == 1 then return refuse({'duplicate'}) end
local size = 0
if ARGV[6] == 'inline' then size = string.len(ARGV[7]) end
if ARGV[6] == 'staged' then
  if redis.call('EXISTS', KEYS[9]) == 0 then return {'unstaged'} end
  size = tonumber(ARGV[7])
end
local max_jobs = tonumber(ARGV[4])
local queued = redis.call('ZCARD', KEYS[1])
if max_jobs and queued >= max_jobs then return refuse({'busy', 'jobs', queued}) end
local max_bytes = tonumber(ARGV[5])
local held = tonumber(redis.call('HGET', KEYS[5], 'payload_bytes') or '0')
if max_bytes and held + size > max_bytes then return refuse({'busy', 'bytes', held}) end
redis.call('HSET', KEYS[6], unpack(ARGV, 10))
if ARGV[6] ~= 'none' then
  if ARGV[6] == 'inline' then
    redis.call('SET', KEYS[7], ARGV[7])
  else
    redis.call('RENAME', KEYS[9], KEYS[7])
    redis.call('PERSIST', KEYS[7])
  end
  redis.call('HSET', KEYS[6], 'payload_bytes', tostring(size))
  if size > 0 then redis.call('HINCRBY', KEYS[5], 'payload_bytes', size) end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) end
if ARGV[8] == '1' then
  redis.call('SET', KEYS[8], ARGV[1])
  redis.call('HSET', KEYS[6], 'idem_key', KEYS[8])
end
return {'created'}
"""

# KEYS: shared. ARGV: job key prefix, payload key prefix, now, owner, lease, tenant cap ('' = none),
# oldest claimable format, newest claimable format, window, rank to start at, ids to scan at most,
# largest payload returned inline.
# The queue's order is the sorted set's: by score (created_at), equal scores by id bytewise, which
# for UTF-8 ids is Python's order of the id strings. Returns {'ok', snapshot, payload size (nil
# without a payload), payload (nil when large)}, {'none'} at the end of the queue, or {'more',
# rank} when the scan stopped before the end and the caller should call again from that rank.
CLAIM = (
    PRELUDE
    + """
local cap = tonumber(ARGV[6])
local oldest, newest = tonumber(ARGV[7]), tonumber(ARGV[8])
local window = tonumber(ARGV[9])
local rank = tonumber(ARGV[10])
local stop = rank + tonumber(ARGV[11])
while rank < stop do
  local ids = redis.call('ZRANGE', KEYS[1], rank, rank + window - 1)
  if #ids == 0 then return {'none'} end
  local kept = 0
  for _, id in ipairs(ids) do
    local key = ARGV[1] .. id
    local job = redis.call('HMGET', key, 'status', 'format', 'tenant_id')
    if job[1] ~= 'queued' then
      -- Not a waiting job (ended by a replica older than the queue, or evicted): it has no place
      -- in the queue, nor its payload in the queue's bytes.
      redis.call('ZREM', KEYS[1], id)
      settle(key, ARGV[2] .. id, id)
    else
      -- A record without a format predates the queue (format 1).
      local format = tonumber(job[2] or '1')
      local claimable = format >= oldest and format <= newest
      if claimable and cap and job[3] then
        claimable = tonumber(redis.call('HGET', KEYS[4], job[3]) or '0') < cap
      end
      if claimable then
        begin(key, id, ARGV[3], ARGV[4], ARGV[5])
        local payload_key = ARGV[2] .. id
        local size, payload = false, false
        if redis.call('EXISTS', payload_key) == 1 then
          size = redis.call('STRLEN', payload_key)
          if size <= tonumber(ARGV[12]) then payload = redis.call('GET', payload_key) end
        end
        return {'ok', snapshot(key), size, payload}
      end
      kept = kept + 1
    end
  end
  rank = rank + kept
end
return {'more', rank}
"""
)

# KEYS: shared, job. ARGV: id, owner, '1' to refund the attempt.
REQUEUE = (
    PRELUDE
    + """
local held = redis.call('HMGET', KEYS[6], 'status', 'owner')
if not held[1] then return {'missing'} end
if held[1] ~= 'running' then return {'illegal', held[1]} end
if held[2] ~= ARGV[2] then return {'not_owner', held[1]} end
requeue(KEYS[6], ARGV[1], ARGV[3] == '1')
return {'ok', snapshot(KEYS[6])}
"""
)

# KEYS: shared. ARGV: now, job key prefix, payload key prefix, error code, error message, ttl ms,
# batch size, max attempts, a cursor of the running hash ('' = none).
# A running job with attempts left is queued again; otherwise it fails, as does a job written before
# the queue (format 1), or a queued one holding a lease (its creator meant to run it itself).
# With a cursor, one batch of the running hash is checked too: a job a replica older than the queue
# ended (its scripts know neither the running count nor payloads) is settled. Returns the ids
# scanned, the jobs reaped, and the next cursor ('0' once the hash has been walked through).
REAP = (
    PRELUDE
    + """
local cursor = '0'
if ARGV[9] ~= '' then
  local scan = redis.call('HSCAN', KEYS[3], ARGV[9], 'COUNT', tonumber(ARGV[7]))
  cursor = scan[1]
  for index = 1, #scan[2], 2 do
    local id = scan[2][index]
    settle(ARGV[2] .. id, ARGV[3] .. id, id)
  end
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[7]))
local reaped = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  local key = ARGV[2] .. id
  local held = redis.call('HMGET', key, 'status', 'attempts', 'format')
  -- A record without a format predates the queue: nobody would claim it again, so it fails.
  if held[1] == 'running' and held[3] and tonumber(held[2] or '0') < tonumber(ARGV[8]) then
    requeue(key, id, false)
    table.insert(reaped, snapshot(key))
  elseif held[1] == 'queued' or held[1] == 'running' then
    finalize(key, ARGV[3] .. id, id, 'failed', ARGV[1], ARGV[6])
    redis.call('HSET', key, 'error_code', ARGV[4], 'error_message', ARGV[5])
    table.insert(reaped, snapshot(key))
  end
end
return {#ids, reaped, cursor}
"""
)

# KEYS: shared. Returns queued, running, payload bytes: one consistent reading.
DEPTH = """
return {redis.call('ZCARD', KEYS[1]), redis.call('HLEN', KEYS[3]),
        tonumber(redis.call('HGET', KEYS[5], 'payload_bytes') or '0')}
"""
