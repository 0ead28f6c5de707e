-- wrk script: POST /score-shaped bodies (1 000 users, 10 candidates with varied features).
--
-- Environment (read by wrk's main state and by every thread):
--   BENCH_PATH     request path, e.g. /v1/rank or /score/egreedy
--   BENCH_SEED     seed of the body pool (each thread adds its index)
--   BENCH_USERS    distinct user ids (default 1000)
--   BENCH_POOL     bodies generated per thread before the run (default 2000)
--   BENCH_IDS_OUT  if set, the event ids of successful responses are written there, one a line
--   BENCH_RESULT   file that done() writes the run's numbers to, as JSON
--
-- Bodies are built before the run, so the generator only picks the next one per request.

local path = os.getenv("BENCH_PATH") or "/v1/rank"
local seed = tonumber(os.getenv("BENCH_SEED") or "1")
local n_users = tonumber(os.getenv("BENCH_USERS") or "1000")
local pool_size = tonumber(os.getenv("BENCH_POOL") or "2000")
local ids_out = os.getenv("BENCH_IDS_OUT")
local result_file = os.getenv("BENCH_RESULT")

local threads = {}
local counter = 0

function setup(thread)
   thread:set("index", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local bodies = {}
local next_body = 1
local headers = { ["Content-Type"] = "application/json" }
ids = {}

local function candidate(j, tip)
   return string.format(
      '{"id":"tip-%d","content":"Task number %d: follow up on the %s","source":"%s",'
         .. '"source_id":"%s-%d","features":{"hour_of_day":%d,"is_overdue":%s,'
         .. '"task_age_days":%.3f,"priority":%d}}',
      tip, tip, ({ "invoice", "report", "garden", "dentist", "review" })[math.random(1, 5)],
      ({ "todoist", "calendar", "notes" })[math.random(1, 3)],
      "src", tip * 10 + j, math.random(0, 23), math.random() < 0.3 and "true" or "false",
      math.random() * 37 - 7, math.random(1, 4))
end

local function body()
   local parts, taken = {}, {}
   for j = 1, 10 do
      local tip = math.random(1, 200)
      while taken[tip] do
         tip = tip % 200 + 1
      end
      taken[tip] = true
      parts[j] = candidate(j, tip)
   end
   return string.format(
      '{"user_id":"user-%04d","candidates":[%s],"context":{"hour_of_day":%d,"day_of_week":%d}}',
      math.random(0, n_users - 1), table.concat(parts, ","), math.random(0, 23),
      math.random(0, 6))
end

function init(args)
   math.randomseed(seed + 7919 * (index or 0))
   for i = 1, pool_size do
      bodies[i] = body()
   end
end

function request()
   local b = bodies[next_body]
   next_body = next_body % pool_size + 1
   return wrk.format("POST", path, headers, b)
end

if ids_out then
   -- {"event_id":"<id>",… is how both /v1/rank answers start; collected for the feedback load.
   function response(status, _headers, resp)
      if status == 200 then
         local id = string.match(resp, '^{"event_id":"([^"]+)"')
         if id then
            ids[#ids + 1] = id
         end
      end
   end
end

function done(summary, latency, _requests)
   local e = summary.errors
   local f = assert(io.open(result_file, "w"))
   f:write(string.format(
      '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,'
         .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
   f:close()
   if ids_out then
      local out = assert(io.open(ids_out, "w"))
      for _, thread in ipairs(threads) do
         for _, id in ipairs(thread:get("ids")) do
            out:write(id, "\n")
         end
      end
      out:close()
   end
end
