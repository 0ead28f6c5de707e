-- wrk script: POST /v1/feedback, each pre-created event id exactly once.
--
-- Environment:
--   BENCH_IDS      file of event ids, one a line; thread i of n takes lines i, i+n, i+2n, …
--   BENCH_THREADS  wrk's -t, so that each thread knows its share
--   BENCH_SEED     seed of the actions and dwell times
--   BENCH_RESULT   file that done() writes the run's numbers to, as JSON
--
-- A thread that runs out of ids sends an id that does not exist: the 404 shows up as an error
-- in the results instead of a duplicate that would be a cheap no-op and flatter the number.
-- Answers that say ``"duplicate":true`` are counted and reported as ``duplicates``.

local ids_file = os.getenv("BENCH_IDS")
local n_threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local seed = tonumber(os.getenv("BENCH_SEED") or "1")
local result_file = os.getenv("BENCH_RESULT")

local counter = 0
local threads = {}

function setup(thread)
   thread:set("index", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

duplicates = 0

function response(status, _headers, body)
   if status == 200 and string.find(body, '"duplicate":true', 1, true) then
      duplicates = duplicates + 1
   end
end

local bodies = {}
local next_body = 1
local headers = { ["Content-Type"] = "application/json" }
local actions = { "done", "snooze", "dismiss" }

function init(args)
   math.randomseed(seed + 7919 * index)
   local line = 0
   for id in io.lines(ids_file) do
      if line % n_threads == index then
         bodies[#bodies + 1] = string.format(
            '{"event_id":"%s","action":"%s","dwell_ms":%d}',
            id, actions[math.random(1, 3)], math.random(200, 60000))
      end
      line = line + 1
   end
end

function request()
   local b = bodies[next_body]
   if b == nil then
      b = '{"event_id":"exhausted-ids","action":"done"}'
   end
   next_body = next_body + 1
   return wrk.format("POST", "/v1/feedback", headers, b)
end

function done(summary, latency, _requests)
   local e = summary.errors
   local dups = 0
   for _, thread in ipairs(threads) do
      dups = dups + thread:get("duplicates")
   end
   local f = assert(io.open(result_file, "w"))
   f:write(string.format(
      '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,'
         .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"duplicates":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.mean, e.connect, e.read, e.write, e.status, e.timeout, dups))
   f:close()
end
