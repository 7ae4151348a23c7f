-- Move ids of one queue from one key layout to the other on the same instance (jobs/queue_move.py,
-- `seen-worker migrate-queue`): per id, atomically, its job (record, try counter, due time, abort
-- mark) and its result go from the source layout's keys to the target layout's keys. A job that
-- a worker holds (its lease exists) stays where it is; an id the target already has is never
-- overwritten.
-- KEYS[1]: the source shard's queue         sorted set of job ids scored by due time (ms)
-- KEYS[2]: the source shard's abort set     sorted set of ids to abort
-- KEYS[3]: the target shard's queue
-- KEYS[4]: the target shard's abort set
-- KEYS[5]: source job record of id i        <source job prefix><id>
-- KEYS[6]: source lease of id i             <source in-progress prefix><id> (read only)
-- KEYS[7]: source try counter of id i       <source retry prefix><id>
-- KEYS[8]: source result of id i            <source result prefix><id>
-- KEYS[9]: target job record of id i
-- KEYS[10]: target lease of id i            (read only)
-- KEYS[11]: target try counter of id i     (a stale one of an id the target lacks is replaced)
-- KEYS[12]: target result of id i
-- repeat: KEYS[5..12] for each id, in the order of the ids in ARGV
-- ARGV[1]: 1 drops the source copy of an id the target already has (ARQ's rule: one job per
--          id; the target's copy stands), 0 leaves it in place and reports it
-- ARGV[2]: id i (one argument per id)
-- returns: three values per id: job status, result status, problem ("" or what went wrong)
--   job status: 0 not in the source queue (finished or moved meanwhile: nothing to do),
--     1 moved (record with its remaining PTTL, try counter with its TTL, score, abort mark),
--     2 held (its source lease exists: a worker runs it; left in place),
--     3 duplicate (the target has a job, lease, queue entry or result with this id; left in
--       place, problem names the key), 4 dropped (a duplicate, with ARGV[1] = 1),
--     5 failed (problem names the key, or the store's refusal of a write; nothing of this id
--       changed)
--   result status: 0 no source result, 1 moved (with its PTTL), 3 duplicate (the target has a
--     result), 4 dropped (with ARGV[1] = 1), 5 failed (as above)
--   a call whose queue or abort set is not a sorted set fails as a whole with the key named,
--   before anything is written.
-- Rule (docs/dragonfly.md): every key of an id is read and checked (its type, the lease's
-- expiry, the target's keys) before the first write for that id; the target's keys are written
-- first, under pcall, and undone when one write fails (a full store), so an id is either wholly
-- in the target or untouched in the source; then the source's keys are deleted (DEL and ZREM
-- cannot fail). The keys span two hashtag groups (ARQ's keys have none, a sharded shard's have
-- its tag): this script runs on one instance only, never on a cluster.
local unpack = table.unpack or unpack
local function kind(key)
  local t = redis.call('TYPE', key)
  return type(t) == 'table' and t.ok or t
end

for k = 1, 4 do
  local t = kind(KEYS[k])
  if t ~= 'zset' and t ~= 'none' then
    return redis.error_reply('ERR ' .. KEYS[k] .. ' is a ' .. t .. ', not a sorted set')
  end
end

local drop = ARGV[1] == '1'
local n = (#KEYS - 4) / 8
local out = {}

-- the type of key; one that is neither a string nor missing adds a problem naming it
local function string_or_none(key, what, problems)
  local t = kind(key)
  if t ~= 'string' and t ~= 'none' then
    problems[#problems + 1] = key .. ' held a ' .. t .. ', not ' .. what
  end
  return t
end

-- the target already has this id: the first key that says so, else nil
local function in_target(id, t_job, t_lease, t_result)
  if redis.call('ZSCORE', KEYS[3], id) then
    return KEYS[3] .. ' already holds it'
  end
  for _, key in ipairs({t_job, t_lease, t_result}) do
    if redis.call('EXISTS', key) == 1 then
      return key .. ' exists'
    end
  end
  return nil
end

-- a string value and its remaining PTTL (-1: none), or nil when the key is missing
local function read(key)
  local ttl = redis.call('PTTL', key)
  if ttl == -2 then
    return nil, nil
  end
  return redis.call('GET', key), ttl
end

local function set(key, value, ttl)
  if ttl >= 0 then
    return redis.pcall('SET', key, value, 'PX', math.max(ttl, 1))
  end
  return redis.pcall('SET', key, value)
end

local function failed(reply)
  return type(reply) == 'table' and reply.err
end

for i = 1, n do
  local id = ARGV[1 + i]
  local k = 4 + 8 * (i - 1)
  local s_job, s_lease, s_retry, s_result = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local t_job, t_lease, t_retry, t_result = KEYS[k + 5], KEYS[k + 6], KEYS[k + 7], KEYS[k + 8]
  local job, res, problem = 0, 0, ''
  local problems = {}

  -- 1. checks: nothing is written before every key of this id was read
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score then
    local lease = kind(s_lease)
    if lease == 'string' and redis.call('PTTL', s_lease) ~= -1 then
      job = 2
    elseif lease ~= 'none' then
      local what = lease == 'string' and 'a lease that never expires' or ('a ' .. lease)
      problems[#problems + 1] = s_lease .. ' held ' .. what
        .. ' (a claim on its layout repairs it; or delete it)'
    else
      string_or_none(s_job, 'a job record', problems)
      string_or_none(s_retry, 'a try counter', problems)
      local there = in_target(id, t_job, t_lease, t_result)
      if there then
        job = drop and 4 or 3
        problem = there
      else
        job = 1
      end
    end
  end
  local result_kind = string_or_none(s_result, 'a result record', problems)
  if result_kind == 'string' then
    if redis.call('EXISTS', t_result) == 1 then
      res = drop and 4 or 3
      if problem == '' then
        problem = t_result .. ' exists'
      end
    else
      res = 1
    end
  end

  if #problems > 0 then
    job = score and 5 or 0
    res = result_kind ~= 'none' and 5 or 0
    problem = table.concat(problems, '; ')
  else
    -- 2. the target's keys, undone if the store refuses one (nothing of the source is gone yet)
    local undo_keys, undo_queue, undo_abort = {}, false, false
    local refused = nil
    local mark = nil
    if job == 1 or job == 4 then
      mark = redis.call('ZSCORE', KEYS[2], id)
    end
    if job == 1 then
      local record, record_ttl = read(s_job)
      local try, try_ttl = read(s_retry)
      if record then
        refused = failed(set(t_job, record, record_ttl))
        undo_keys[#undo_keys + 1] = not refused and t_job or nil
      end
      if not refused then
        if try then
          refused = failed(set(t_retry, try, try_ttl))
          undo_keys[#undo_keys + 1] = not refused and t_retry or nil
        else
          redis.call('DEL', t_retry) -- a stale counter of an id the target does not have
        end
      end
      if not refused then
        local added = redis.pcall('ZADD', KEYS[3], 'NX', score, id)
        refused = failed(added)
        undo_queue = added == 1
      end
    end
    if mark and not refused then
      local added = redis.pcall('ZADD', KEYS[4], 'NX', mark, id)
      refused = failed(added)
      undo_abort = added == 1
    end
    if res == 1 and not refused then
      local result, result_ttl = read(s_result)
      refused = failed(set(t_result, result, result_ttl))
    end
    if refused then
      if #undo_keys > 0 then
        redis.call('DEL', unpack(undo_keys))
      end
      if undo_queue then
        redis.call('ZREM', KEYS[3], id)
      end
      if undo_abort then
        redis.call('ZREM', KEYS[4], id)
      end
      job = (job == 1 or job == 4) and 5 or job
      res = (res == 1 or res == 4) and 5 or res
      problem = 'the store refused a write to the target: ' .. refused
    else
      -- 3. the source's keys (DEL and ZREM cannot fail on keys of the checked types)
      if job == 1 or job == 4 then
        redis.call('DEL', s_job, s_retry)
        redis.call('ZREM', KEYS[1], id)
        if mark then
          redis.call('ZREM', KEYS[2], id)
        end
      end
      if res == 1 or res == 4 then
        redis.call('DEL', s_result)
      end
    end
  end
  out[#out + 1] = job
  out[#out + 1] = res
  out[#out + 1] = problem
end
return out
