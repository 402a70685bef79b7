-- Signed Twilio voice webhooks for wrk, each with a fresh CallSid (see twilio_webhook.py).
--
--   wrk -t T -c C -d D --latency -s bench/signed_requests.lua URL -- FILE T HOST MARKER
--
-- FILE has one pre-signed webhook per line: "<X-Twilio-Signature>\t<urlencoded form>",
-- signed for http://HOST/twilio/voice, or "<signature>\t<path?query>\t<form>" for that
-- path. Thread k (0-based) sends lines k+1, k+1+T, ..., each once. It never repeats a
-- CallSid: when its share runs out, wrk exits with status 3.
-- A 2xx answer whose body lacks MARKER (the <Number> the answer must dial) is
-- counted as bad TwiML. done() prints one line, "WRK_RESULT {json}", for the driver.

local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  local file, nthreads, host = args[1], tonumber(args[2]), args[3]
  marker = args[4]
  queue = {}
  available, sent, non2xx, bad = 0, 0, 0, 0
  local line_no = 0
  local f = assert(io.open(file, "r"))
  for line in f:lines() do
    if line_no % nthreads == tid then
      -- "signature<TAB>form" posts to /twilio/voice; "signature<TAB>path<TAB>form" to path.
      local signature, path, body = line:match("^([^\t]+)\t([^\t]+)\t(.+)$")
      if not signature then
        signature, body = line:match("^([^\t]+)\t(.+)$")
        path = "/twilio/voice"
      end
      assert(signature, "malformed line " .. (line_no + 1) .. " in " .. file)
      available = available + 1
      queue[available] = wrk.format("POST", path, {
        ["Host"] = host,
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = signature,
      }, body)
    end
    line_no = line_no + 1
  end
  f:close()
end

function request()
  sent = sent + 1
  local req = queue[sent]
  if req == nil then
    io.stderr:write(string.format(
      "signed_requests.lua: thread %d has sent all its %d signed requests and will not"
        .. " repeat a CallSid; raise --max-rate\n", tid, available))
    io.stderr:flush()
    os.exit(3)
  end
  queue[sent] = false -- sent once: drop the text
  return req
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif not string.find(body, marker, 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local totals = { sent = 0, available = 0, non2xx = 0, bad = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %.0f, "duration_us": %.0f, "rps": %.3f,'
      .. ' "p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, "max_us": %.0f,'
      .. ' "mean_us": %.1f, "connect": %.0f, "read": %.0f, "write": %.0f,'
      .. ' "timeout": %.0f, "status": %.0f, "non2xx": %.0f, "bad_twiml": %.0f,'
      .. ' "sent": %.0f, "available": %.0f}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, e.connect, e.read, e.write, e.timeout, e.status,
    totals.non2xx, totals.bad, totals.sent, totals.available))
end
