-- The wrk script of studyflow-bench (`load.rs` writes it out and runs `wrk -s`).
--
-- Settings come from the environment, read when each wrk thread loads the script:
--   STUDYFLOW_WRK_METHOD   request method (GET, POST, ...)
--   STUDYFLOW_WRK_BODY     file whose bytes are the request body (unset: no body)
--   STUDYFLOW_WRK_RATE     requests per second of one wrk thread (unset or 0: saturation)
-- `done` prints one JSON line with the run's summary and latency percentiles.

wrk.method = os.getenv("STUDYFLOW_WRK_METHOD") or "GET"

local body_file = os.getenv("STUDYFLOW_WRK_BODY")
if body_file and body_file ~= "" then
  local file = assert(io.open(body_file, "rb"))
  wrk.body = file:read("*a")
  file:close()
end

local rate = tonumber(os.getenv("STUDYFLOW_WRK_RATE") or "0") or 0

-- A fixed rate: each request of this thread takes the next slot of an even schedule and
-- waits for it. wrk calls `delay` before every request and waits whole milliseconds, so
-- a request may leave up to 1 ms before its slot; over the run the rate is the
-- schedule's. A late request (its slot passed) leaves at once, so a stall is followed by
-- a catch-up, as from independent clients. Latency is timed from when the request is
-- written, after the wait. Left undefined at saturation: wrk then never waits.
if rate > 0 then
  local ffi = require("ffi")
  ffi.cdef([[
    typedef struct { long tv_sec; long tv_nsec; } studyflow_timespec;
    int clock_gettime(int clock_id, studyflow_timespec *tp);
  ]])
  local CLOCK_MONOTONIC = 1
  local now_buffer = ffi.new("studyflow_timespec")
  local function now_ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, now_buffer)
    return tonumber(now_buffer.tv_sec) * 1000 + tonumber(now_buffer.tv_nsec) / 1e6
  end

  local interval_ms = 1000 / rate
  local next_slot = nil

  function delay()
    local now = now_ms()
    next_slot = next_slot or now
    local slot = next_slot
    next_slot = next_slot + interval_ms
    if slot <= now then
      return 0
    end
    return math.floor(slot - now)
  end
end

function done(summary, latency, _requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,'
      .. '"error_statuses":%d,"socket_errors":%d}\n',
    summary.requests,
    summary.duration,
    latency:percentile(50),
    latency:percentile(99),
    latency:percentile(99.9),
    errors.status,
    errors.connect + errors.read + errors.write + errors.timeout
  ))
end
