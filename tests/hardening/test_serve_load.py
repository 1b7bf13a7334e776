"""Sustained load from a real load generator (wrk) on loopback.

``HARDENING_LOAD_SECONDS`` (default 30) at ``HARDENING_LOAD_CONNECTIONS``
(default 64) connections, rotating through CSV, JSON and JSON Lines requests
of one to fifty rows, labels and probabilities.  Expected: no error at all
(non-2xx answers, connect/read/write errors, timeouts), no worker restarted,
and each worker's resident memory flat: the mean over the last quarter of the
run within 20 MB and 10 % of the mean over the first quarter.  ``pytest -s``
prints the figures.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time

import pytest

from tests.hardening.endpoint import FEATURES, ROW, endpoint_tree, predict_one, rss_bytes
from scripts.serve_process import ServeProcess as Server

WRK = shutil.which("wrk")
SECONDS = int(os.environ.get("HARDENING_LOAD_SECONDS", "30"))
CONNECTIONS = int(os.environ.get("HARDENING_LOAD_CONNECTIONS", "64"))
GROWTH_LIMIT_BYTES = 20 * 2**20
GROWTH_LIMIT_SHARE = 0.10

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(WRK is None, reason="needs wrk (apt-get install wrk)")]


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def wrk_script() -> str:
    rows = [ROW.replace("49", str(20 + i), 1) for i in range(50)]
    named = [dict(zip(FEATURES, r.split(","))) for r in rows[:5]]
    requests = [
        ("text/csv", "text/csv", "output=label", ROW),
        ("text/csv", "application/json", "output=all", "\n".join(rows)),
        ("application/json", "application/json", "output=probabilities",
         json.dumps({"instances": named})),
        ("application/jsonlines", "application/jsonlines", "output=label",
         "\n".join(json.dumps(r) for r in named)),
        ("text/csv", "text/csv", "output=probabilities", "\n".join(rows[:10])),
    ]
    entries = ",\n".join(
        "  {ct=%s, accept=%s, attributes=%s, body=%s}" % tuple(map(lua_string, r))
        for r in requests)
    return f"""
local requests = {{
{entries}
}}
local i = 0
request = function()
  i = i % #requests + 1
  local r = requests[i]
  return wrk.format("POST", "/invocations",
    {{["Content-Type"] = r.ct, ["Accept"] = r.accept,
      ["X-Amzn-SageMaker-Custom-Attributes"] = r.attributes}}, r.body)
end
done = function(summary, latency, _)
  io.write(string.format(
    "RESULT {{\\"requests\\": %d, \\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, " ..
    "\\"status\\": %d, \\"timeout\\": %d, \\"p50_ms\\": %.1f, \\"p99_ms\\": %.1f, " ..
    "\\"max_ms\\": %.1f}}\\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


class MemorySampler(threading.Thread):
    """Samples each worker's RSS every ``interval`` seconds until stopped."""

    def __init__(self, pids, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pids = sorted(pids)
        self.interval = interval
        self.samples: list[tuple[float, dict[int, int]]] = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.samples.append((time.monotonic(), {p: rss_bytes(p) for p in self.pids}))
            self.halt.wait(self.interval)

    def quarters(self, pid: int) -> tuple[float, float]:
        values = [s[pid] for _, s in self.samples]
        quarter = max(1, len(values) // 4)
        return (sum(values[:quarter]) / quarter, sum(values[-quarter:]) / quarter)


def run_wrk(url: str, script, seconds: int, connections: int) -> dict:
    command = [WRK, "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
               "-s", str(script), url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_sustained_load_has_no_errors_and_flat_worker_memory(trained_model, tmp_path):
    base = endpoint_tree(trained_model, tmp_path)
    script = tmp_path / "requests.lua"
    script.write_text(wrk_script())
    with Server(base, workers=2) as server:
        pids = server.wait_for_workers(2)
        booted = server.booted()
        # Warm-up: first requests fill caches that then stay; not part of the figures.
        warm = run_wrk(server.url, script, 3, 8)
        assert warm["status"] == 0, warm

        sampler = MemorySampler(pids)
        sampler.start()
        figures = run_wrk(server.url, script, SECONDS, CONNECTIONS)
        sampler.halt.set()
        sampler.join()

        assert server.worker_pids() == pids, "a worker was replaced under load"
        assert server.booted() == booted
        predict_one(server)

    errors = {k: figures[k] for k in ("connect", "read", "write", "status", "timeout")}
    memory = {pid: sampler.quarters(pid) for pid in pids}
    print(f"\nload: {SECONDS} s at {CONNECTIONS} connections: {figures['requests']} requests "
          f"({figures['requests'] / SECONDS:.0f}/s), errors {errors}, latency p50 "
          f"{figures['p50_ms']} ms p99 {figures['p99_ms']} ms max {figures['max_ms']} ms")
    for pid, (first, last) in memory.items():
        print(f"  worker {pid}: RSS first quarter {first / 2**20:.1f} MB, last quarter "
              f"{last / 2**20:.1f} MB ({(last - first) / 2**20:+.1f} MB), "
              f"{len(sampler.samples)} samples")
    assert figures["requests"] > 0
    assert sum(errors.values()) == 0, errors
    for pid, (first, last) in memory.items():
        assert first > 0 and last > 0, (pid, first, last)
        growth = last - first
        assert growth < GROWTH_LIMIT_BYTES and growth < GROWTH_LIMIT_SHARE * first, \
            f"worker {pid} grew from {first / 2**20:.1f} MB to {last / 2**20:.1f} MB"
