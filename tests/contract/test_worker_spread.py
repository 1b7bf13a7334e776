"""Concurrent requests are spread over the workers, not piled on one."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import requests

from scripts.serve_process import ServeProcess as Server


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_two_pooled_connections_with_large_requests_use_both_workers(serving_tree, tmp_path):
    rows = ("49,25,46.22,1161.97,month-to-month,electronic-check,dsl,1,west,no\n"
            "30,32,68.95,2302.4,one-year,credit-card,fiber,1,north,yes\n")
    body = (rows * 40000).encode()  # about 5 MB, 80,000 rows: seconds of work
    with Server(serving_tree, env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"}, workers=2) as server:
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
        deadline = time.monotonic() + 30
        while len(workers := [int(p) for p in children.read_text().split()]) < 2 \
                and time.monotonic() < deadline:
            time.sleep(0.1)  # the first worker may answer /ping before the second is up
        assert len(workers) == 2
        time.sleep(1.0)  # and until the second one listens
        before = {pid: cpu_ticks(pid) for pid in workers}
        # A pooling client (batch transform's agent) opens its connections first.
        sessions = [requests.Session() for _ in range(2)]
        for session in sessions:
            assert session.get(server.url + "/ping", timeout=10).status_code == 200
        answers = []

        def send(session):
            answers.append(session.post(server.url + "/invocations", data=body, timeout=120,
                                        headers={"Content-Type": "text/csv"}))

        threads = [threading.Thread(target=send, args=(s,)) for s in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [200, 200]
        assert all(len(a.text.splitlines()) == 80000 for a in answers)
        used = {pid: cpu_ticks(pid) - before[pid] for pid in workers}
        # Each worker did a real share of the work (one request each).
        assert min(used.values()) > 0.3 * max(used.values()), used
