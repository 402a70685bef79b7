"""The Lua scripts of the Redis leases (adapter/asterisk/redis_leases.py): each one check
and change done atomically in Redis, on Redis's own clock (TIME)."""

NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# KEYS: lease, registry. ARGV: token, ttl ms, call id.
ACQUIRE = (
    NOW_MS
    + """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
if held then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
return 1
"""
)

# KEYS: registry, lease 1..n. ARGV: ttl ms, token 1..n, call id 1..n. Returns lost calls.
RENEW = (
    NOW_MS
    + """
local n = #KEYS - 1
local lost = {}
for i = 1, n do
  if redis.call('GET', KEYS[i + 1]) == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i + 1], ARGV[1])
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[n + i + 1])
  else
    lost[#lost + 1] = ARGV[n + i + 1]
  end
end
return lost
"""
)

# KEYS: lease, registry. ARGV: token, call id. A clean stop: an orphan at once.
HAND_OVER = (
    NOW_MS
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZADD', KEYS[2], now, ARGV[2])
return 1
"""
)

# KEYS: workers. ARGV: this worker, ttl ms. Returns the workers alive.
MEMBERS = (
    NOW_MS
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
"""
)

# KEYS: lease, acted. ARGV: token, decision, acted ttl ms, this fence's mark (token#nonce).
# 1 granted, 0 acted, -1 lost. The mark makes a retried call (a reply lost on a broken
# connection) idempotent, while a replay of the decision, with a new mark, is refused.
FENCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local mark = redis.call('HGET', KEYS[2], ARGV[2])
if mark == ARGV[4] then return 1 end
if mark then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS: acted. ARGV: decision, token.
UNFENCE = """
local mark = redis.call('HGET', KEYS[1], ARGV[1])
if mark and string.sub(mark, 1, #ARGV[2] + 1) == ARGV[2] .. '#' then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"""

# KEYS: lease, registry. ARGV: token, call id.
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: registry. ARGV: lease key prefix, limit. Registered calls past their lease's end
# whose lease key is gone (a lease renewed late keeps its key: it is not an orphan).
ORPHANS = (
    NOW_MS
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local free = {}
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then free[#free + 1] = id end
end
return free
"""
)
