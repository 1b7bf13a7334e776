"""``GET /ping`` must answer whatever the workers are doing.

SageMaker probes ``/ping`` with a 2 s limit and replaces an instance that
stops answering; async endpoints run requests for up to an hour.  The model
here sleeps for as many seconds as each request asks (its
``code/inference.py``), so the tests can hold workers busy on purpose.

The figures (latency of /ping under load: median, p99, max) are printed:
run with ``pytest -s`` to see them.
"""
from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.contract.hosting import percentile, slow_model, summary_ms, wait_for
from scripts.serve_process import ServeProcess as Server

WORKERS = 2
THREADS = 4
PING_LIMIT = 0.5  # seconds: a quarter of SageMaker's 2 s probe timeout
SLOW_SECONDS = 2.0
WINDOW = 5.0  # seconds of pinging while the workers are busy


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    base = slow_model(trained_model, tmp_path_factory.mktemp("slow"))
    env = {"SAGEMAKER_MODEL_SERVER_THREADS": str(THREADS),
           "SAGEMAKER_MODEL_SERVER_TIMEOUT": "30"}
    with Server(base, env, workers=WORKERS) as server:
        server.wait_for_workers(WORKERS)
        yield server


def measure_pings(server, busy_clients: int, label: str) -> tuple[list[float], list]:
    """Ping for WINDOW seconds while ``busy_clients`` threads keep slow requests in flight.

    Returns the ping latencies and the slow requests' answers (status, worker pid)."""
    stop = threading.Event()
    answers, in_flight = [], []

    def busy():
        while not stop.is_set():
            in_flight.append(1)
            try:
                answer = requests.post(server.url + "/invocations", data=str(SLOW_SECONDS),
                                       headers={"Content-Type": "text/csv"}, timeout=60)
                pid = int(float(answer.text.split(",")[1])) if answer.ok else None
                answers.append((answer.status_code, pid))
            except requests.RequestException as exc:
                answers.append((type(exc).__name__, None))
            finally:
                in_flight.pop()

    clients = [threading.Thread(target=busy, daemon=True) for _ in range(busy_clients)]
    for client in clients:
        client.start()
    latencies = []
    try:
        assert wait_for(lambda: len(in_flight) == busy_clients, 10)
        time.sleep(0.5)  # every slow request has reached a worker
        end = time.monotonic() + WINDOW
        while time.monotonic() < end and len(latencies) < 200:
            began = time.monotonic()
            try:
                status = requests.get(server.url + "/ping", timeout=10).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            latencies.append(time.monotonic() - began)
            assert status == 200, status
            time.sleep(0.02)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=SLOW_SECONDS + 30)
    print(f"\n/ping with {label}: {summary_ms(latencies)}")
    return latencies, answers


def test_ping_answers_while_a_long_request_runs_in_each_worker(server):
    """The async-inference case: one long request per worker, threads to spare."""
    latencies, answers = measure_pings(server, busy_clients=WORKERS, label="one slow request "
                                       "per worker")
    assert {status for status, _ in answers} == {200}
    assert len(latencies) >= 20
    assert max(latencies) < PING_LIMIT, summary_ms(latencies)


def test_ping_answers_when_every_thread_of_every_worker_is_busy(server):
    # Twice as many slow requests as threads: every worker's every thread is busy
    # and more requests wait in each worker's queue.
    latencies, answers = measure_pings(server, busy_clients=2 * WORKERS * THREADS,
                                       label=f"all {WORKERS}x{THREADS} threads busy")
    assert {status for status, _ in answers} == {200}
    assert len({pid for _, pid in answers}) == WORKERS  # both workers were busy
    print(f"/ping p99={percentile(latencies, 99) * 1000:.0f} ms "
          f"max={max(latencies) * 1000:.0f} ms")
    assert max(latencies) < PING_LIMIT, summary_ms(latencies)
    assert len(latencies) >= 20, summary_ms(latencies)
