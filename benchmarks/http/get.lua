-- wrk script: GET BENCH_PATH; done() writes the run's numbers to BENCH_RESULT as JSON.

local path = os.getenv("BENCH_PATH") or "/"
local result_file = os.getenv("BENCH_RESULT")

function request()
   return wrk.format("GET", path)
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
end
