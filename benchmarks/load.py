"""Load generators: ``wrk`` for small requests, a threaded Python client for big ones.

``wrk`` (https://github.com/wg/wrk) keeps ``connections`` requests in flight
for a fixed time; a Lua script makes them POSTs with the payload as body and
prints the counts and latency percentiles as one JSON line when it is done.

The Python client is for payloads of megabytes, where a handful of requests
take seconds each: ``concurrency`` threads (one per worker) each send the
payload again and again, one request at a time.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

RESULT_MARK = "BENCH-RESULT "

WRK_SCRIPT = r"""
-- POST the body in $BENCH_BODY with Content-Type $BENCH_CONTENT_TYPE; print a JSON summary.
-- With $BENCH_METHOD=GET: GETs, no body (the health check).
if os.getenv("BENCH_METHOD") == "GET" then
  wrk.method = "GET"
else
  local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
  wrk.headers["Accept"] = os.getenv("BENCH_CONTENT_TYPE")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    os.getenv("BENCH_MARK"), summary.requests, summary.duration, summary.bytes, e.connect,
    e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max))
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if not path:
        return "missing"
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    text = (result.stdout + result.stderr).strip().splitlines()
    return text[0].split("Copyright")[0].strip() if text else "unknown"


@dataclass
class Sample:
    """One measured run against one server."""

    requests: int
    seconds: float
    rows: int  # rows per request
    p50_ms: float
    p99_ms: float
    errors: int = 0
    error_detail: str = ""
    extra: dict = field(default_factory=dict)
    first_answer: bytes | None = None  # kept to compare the two servers' answers

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rps * self.rows

    def to_json(self) -> dict:
        return {"requests": self.requests, "seconds": round(self.seconds, 3),
                "requests_per_s": round(self.rps, 2), "rows_per_s": round(self.rows_per_s, 1),
                "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "errors": self.errors, **({"error": self.error_detail} if self.errors else {}),
                **self.extra}


class WrkError(RuntimeError):
    pass


def run_wrk(url: str, body_path: Path, content_type: str, *, duration: float,
            connections: int, rows: int, threads: int = 1, script_dir: Path,
            timeout_s: float = 30, path: str = "/invocations", method: str = "POST") -> Sample:
    """``wrk --latency`` for ``duration`` seconds; POSTs the file at ``body_path`` (or,
    with ``method="GET"``, GETs ``path``)."""
    script = script_dir / "request.lua"
    if not script.exists() or script.read_text() != WRK_SCRIPT:
        script.write_text(WRK_SCRIPT)
    duration_arg = f"{max(1, round(duration))}s"  # wrk takes whole seconds
    args = [wrk_path() or "wrk", "-t", str(max(1, min(threads, connections))),
            "-c", str(connections), "-d", duration_arg, "--timeout", f"{int(timeout_s)}s",
            "--latency", "-s", str(script), url + path]
    env = {**os.environ, "BENCH_BODY": str(body_path), "BENCH_CONTENT_TYPE": content_type,
           "BENCH_MARK": RESULT_MARK, "BENCH_METHOD": method}
    try:
        result = subprocess.run(args, env=env, capture_output=True, text=True,
                                timeout=duration + timeout_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish: {' '.join(args)}") from exc
    line = next((l for l in result.stdout.splitlines() if l.startswith(RESULT_MARK)), None)
    if result.returncode != 0 or line is None:
        raise WrkError(f"wrk failed ({result.returncode}): {result.stderr.strip()[:500]} "
                       f"{result.stdout.strip()[-500:]}")
    data = json.loads(line[len(RESULT_MARK):])
    errors = (data["connect_errors"] + data["read_errors"] + data["write_errors"]
              + data["status_errors"] + data["timeouts"])
    detail = ""
    if errors:
        detail = ", ".join(f"{k}={data[k]}" for k in ("connect_errors", "read_errors",
                                                      "write_errors", "status_errors",
                                                      "timeouts") if data[k])
    # Requests that failed are not throughput.
    good = max(0, data["requests"] - data["status_errors"])
    return Sample(good, data["duration_us"] / 1e6, rows, data["p50_us"] / 1000,
                  data["p99_us"] / 1000, errors, detail,
                  {"p90_ms": round(data["p90_us"] / 1000, 2),
                   "mean_ms": round(data["mean_us"] / 1000, 2),
                   "max_ms": round(data["max_us"] / 1000, 2)})


def post(port: int, body: bytes, content_type: str, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/invocations", body=body,
                     headers={"Content-Type": content_type, "Accept": content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def run_client(port: int, body: bytes, content_type: str, rows: int, *, concurrency: int,
               duration: float | None = None, requests_per_thread: int | None = None,
               timeout: float = 300, keep_first: bool = False) -> Sample:
    """``concurrency`` threads POST ``body`` back to back.

    Each thread sends ``requests_per_thread`` requests, or keeps starting new
    ones until ``duration`` seconds have passed (at least one each).  An
    answer counts when it is a 200 with one line per row.
    """
    latencies: list[float] = []
    failures: list[str] = []
    first: list[bytes] = []
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + (duration or 0)

    def worker():
        sent = 0
        while True:
            if requests_per_thread is not None and sent >= requests_per_thread:
                return
            if requests_per_thread is None and sent > 0 and time.perf_counter() >= deadline:
                return
            sent += 1
            t0 = time.perf_counter()
            try:
                status, answer = post(port, body, content_type, timeout)
            except OSError as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - t0
            lines = answer.count(b"\n") + (0 if answer.endswith(b"\n") or not answer else 1)
            with lock:
                if status == 200 and lines == rows:
                    latencies.append(elapsed)
                    if keep_first and not first:
                        first.append(answer)
                else:
                    failures.append(f"HTTP {status}, {lines} lines for {rows} rows: "
                                    f"{answer[:200]!r}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    sample = Sample(len(latencies), seconds, rows,
                    percentile(latencies, 50) * 1000 if latencies else 0.0,
                    percentile(latencies, 99) * 1000 if latencies else 0.0,
                    len(failures), "; ".join(sorted(set(failures))[:3]))
    sample.extra["mean_ms"] = round(statistics.fmean(latencies) * 1000, 2) if latencies else 0
    sample.first_answer = first[0] if first else None
    return sample
