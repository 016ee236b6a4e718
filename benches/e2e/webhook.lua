-- wrk script for scripts/bench: POSTs the same 1 KiB JSON webhook on every request, with
-- its GitHub signature. GitHub signs no timestamp, so one signature computed by the
-- harness (BENCH_SIGNATURE) is valid for every request, and wrk stays the load generator.
--
-- BENCH_DELAY_MS paces each connection (wrk's delay() hook) for the fixed-rate run; its
-- fractional part is honoured on average, since wrk takes whole milliseconds.
-- done() prints one "BENCH key=value ..." line for the harness to parse.

local body_file = assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE not set")
local f = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-Hub-Signature-256"] = assert(os.getenv("BENCH_SIGNATURE"), "BENCH_SIGNATURE not set")

local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pace and pace > 0 then
  local whole = math.floor(pace)
  local frac = pace - whole
  function delay()
    if math.random() < frac then
      return whole + 1
    end
    return whole
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
