-- wrk script: POST pre-signed webhook bodies (bench/payloads.py output), each exactly once.
-- Usage: wrk -t T -c C -d D -s bench/wrk_webhook.lua URL -- BODIES_FILE T
-- Thread k sends lines k, k+T, k+2T... so no message id goes out twice. Counts 200s itself,
-- because wrk's summary lumps every 2xx/3xx together.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local nthreads = tonumber(args[2])
  requests = {}
  local n = 0
  for line in io.lines(path) do
    if n % nthreads == id then
      local tab = line:find("\t", 1, true)
      local headers = {
        ["Content-Type"] = "application/json",
        ["User-Agent"] = "facebookexternalua",
        ["X-Hub-Signature-256"] = line:sub(1, tab - 1),
      }
      requests[#requests + 1] = wrk.format("POST", nil, headers, line:sub(tab + 1))
    end
    n = n + 1
  end
  -- Out of fresh ids: send a harmless GET instead of repeating one, and say so in the output.
  spare = wrk.format("GET", "/health/")
  i = 0
  sent = 0
  ok = 0
  other = 0
  exhausted = 0
end

function request()
  i = i + 1
  if i > #requests then
    exhausted = 1
    return spare
  end
  sent = sent + 1
  return requests[i]
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local sent, ok, other, exhausted = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("sent")
    ok = ok + thread:get("ok")
    other = other + thread:get("other")
    exhausted = exhausted + thread:get("exhausted")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "sent": %d, "ok": %d, "other": %d, "exhausted": %d, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, '
      .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, sent, ok, other, exhausted,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
