-- wrk script for scripts/serve-bench.sh: each connection cycles through
-- what a dashboard reads (job list, a job's detail, new events, workers,
-- checkpoints, a log tail) and what Prometheus reads (/metrics).
-- HERD_BENCH_JOB: the job id; HERD_BENCH_DELAY_MS: pause between a
-- connection's requests (0: as fast as the server answers).
local job = os.getenv("HERD_BENCH_JOB") or "1"
local pause = tonumber(os.getenv("HERD_BENCH_DELAY_MS") or "0")
local paths = {
  "/api/jobs",
  "/api/jobs/" .. job,
  "/api/jobs/" .. job .. "/events?offset=0&limit=50",
  "/api/jobs/" .. job .. "/workers",
  "/api/jobs/" .. job .. "/checkpoints",
  "/api/jobs/" .. job .. "/logs/0?tail=4000",
  "/metrics",
}
local i = 0
function init(args)
  i = math.random(#paths)
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
function delay()
  return pause
end
