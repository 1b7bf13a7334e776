"""Faults around a running ``serve``: a worker killed under load, SIGTERM under
load, and a model that cannot be loaded.

* kill -9 of one worker while clients send requests: gunicorn replaces it, /ping
  answers 200 again within 2 s, and the only requests that fail are those that
  had started before the kill (the ones in flight on that worker); every
  request sent after it succeeds.
* SIGTERM (SageMaker's scale-in; SIGKILL follows 30 s later) while slow
  requests run: every one of them completes with 200, and serve exits 0
  within the 30 s.
* A missing or corrupt model: serve exits non-zero at once with one log line
  that names the file and the problem, and no traceback.

``pytest -s`` prints the figures.
"""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import pytest
import requests

from tests.contract.hosting import add_inference_code, wait_for
from tests.hardening.endpoint import ROW, endpoint_tree, predict_one
from scripts.serve_process import ServeProcess as Server

CLIENTS = 8
SIGKILL_GRACE = 30  # seconds SageMaker waits after SIGTERM


class Client(threading.Thread):
    """Sends one request after another, each on a new connection, and keeps an
    account of each: (start, end, outcome)."""

    def __init__(self, url: str, halt: threading.Event):
        super().__init__(daemon=True)
        self.url, self.halt = url, halt
        self.results: list[tuple[float, float, object]] = []

    def run(self):
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                answer = requests.post(self.url + "/invocations", data=ROW,
                                       headers={"Content-Type": "text/csv",
                                                "Connection": "close"}, timeout=30)
                outcome = answer.status_code
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            self.results.append((started, time.monotonic(), outcome))


@pytest.mark.slow
def test_a_worker_killed_under_load_is_replaced_and_only_its_requests_fail(trained_model,
                                                                            tmp_path):
    base = endpoint_tree(trained_model, tmp_path)
    with Server(base, workers=2) as server:
        workers = server.wait_for_workers(2)
        booted = server.booted()
        halt = threading.Event()
        clients = [Client(server.url, halt) for _ in range(CLIENTS)]
        for client in clients:
            client.start()
        time.sleep(2)

        victim = min(workers)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        ping_ok_after = None
        while time.monotonic() - killed_at < 10:
            try:
                if requests.get(server.url + "/ping", timeout=2).status_code == 200:
                    ping_ok_after = time.monotonic() - killed_at
                    break
            except requests.RequestException:
                pass
            time.sleep(0.02)
        def new_pair():
            pids = server.worker_pids()
            # the new worker logs its boot after it exists: wait for both
            return pids if len(pids) == 2 and victim not in pids and server.announced(pids) \
                else None

        replaced = wait_for(new_pair, 30)
        replaced_after = time.monotonic() - killed_at
        time.sleep(2)  # load goes on, now on the new worker too
        halt.set()
        for client in clients:
            client.join(timeout=60)
        assert server.booted() == booted + 1
        predict_one(server)

    results = [r for client in clients for r in client.results]
    failed = [r for r in results if r[2] != 200]
    after_kill = [r for r in results if r[0] > killed_at]
    print(f"\nkill -9 of worker {victim}: {len(results)} requests, {len(failed)} failed "
          f"({sorted({str(r[2]) for r in failed})}), /ping 200 after {ping_ok_after:.3f} s, "
          f"replacement worker after {replaced_after:.2f} s")
    assert victim not in replaced and len(replaced - workers) == 1
    assert ping_ok_after is not None and ping_ok_after < 2, ping_ok_after
    assert after_kill and all(r[2] == 200 for r in after_kill), \
        [r for r in after_kill if r[2] != 200]
    # The failures were in flight on the killed worker: started before the kill,
    # at most one per client, ended by it.
    assert len(failed) <= CLIENTS
    assert all(r[0] <= killed_at <= r[1] for r in failed), (killed_at, failed)


# Like tests/contract/hosting.py's slow model, and each request leaves a file when it
# starts sleeping, so the test knows when all of them are in flight.
MARKED_SLOW_INFERENCE = '''\
"""Test model: sleeps for the seconds the body names; marks each start in a folder."""
import os
import time
import uuid


def input_fn(body, content_type):
    return float(body.strip() or 0)  # a str for text/csv, as in AWS's images


def predict_fn(seconds, model):
    folder = os.environ["HARDENING_STARTED_DIR"]
    open(os.path.join(folder, uuid.uuid4().hex), "w").close()
    time.sleep(seconds)
    return [[seconds, os.getpid()]]
'''


@pytest.mark.slow
def test_sigterm_under_load_finishes_the_requests_in_flight_and_exits_0(trained_model,
                                                                        tmp_path):
    base = endpoint_tree(trained_model, tmp_path)
    add_inference_code(base / "model", MARKED_SLOW_INFERENCE)
    started = tmp_path / "started"
    started.mkdir()
    server = Server(base, {"HARDENING_STARTED_DIR": str(started)}, workers=2).start()
    try:
        server.wait_for_workers(2)
        seconds = 2.0

        def slow(_):
            answer = requests.post(server.url + "/invocations", data=str(seconds),
                                   headers={"Content-Type": "text/csv"}, timeout=60)
            return answer.status_code, answer.text

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(slow, i) for i in range(6)]
            # Two workers of four threads: all six requests sleep at once.
            assert wait_for(lambda: len(list(started.iterdir())) == 6, 30), \
                list(started.iterdir())
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            answers = [f.result(timeout=60) for f in futures]
            finished = time.monotonic() - signalled
        code = server.process.wait(timeout=SIGKILL_GRACE)
        exited = time.monotonic() - signalled
    finally:
        server.stop()
    print(f"\nSIGTERM under load: {len(answers)} requests in flight all answered within "
          f"{finished:.2f} s, serve exited {code} after {exited:.2f} s")
    assert [status for status, _ in answers] == [200] * 6, answers
    assert all(text.startswith(str(seconds)) for _, text in answers), answers
    assert code == 0, server.log()[-3000:]
    assert exited < SIGKILL_GRACE - 5


# -- a model that cannot be loaded ---------------------------------------------------------
def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BROKEN_MODELS = {
    # name: (how to break the model folder, file named, words of the problem)
    "model.joblib not a model": (lambda m: joblib.dump({"weights": [1, 2]}, m / "model.joblib"),
                                 "model.joblib", "holds a dict, not a fitted model"),
    "metadata.json not JSON": (lambda m: (m / "metadata.json").write_text("{not json"),
                               "metadata.json", "cannot be read as JSON"),
    "metadata.json without features": (lambda m: (m / "metadata.json").write_text(
        '{"target": "churn", "task": "classification"}'), "metadata.json", "bad field"),
    "model.joblib garbage": (lambda m: (m / "model.joblib").write_bytes(os.urandom(4096)),
                             "model.joblib", "cannot be loaded"),
    "model.joblib truncated": (lambda m: truncate(m / "model.joblib"),
                               "model.joblib", "cannot be loaded"),
    "model.joblib empty": (lambda m: (m / "model.joblib").write_bytes(b""),
                           "model.joblib", "cannot be loaded"),
    "model.joblib missing": (lambda m: (m / "model.joblib").unlink(),
                             "model.joblib", "is missing"),
    "model.joblib not a model": (lambda m: (m / "model.joblib").write_bytes(
        pickle.dumps({"weights": [1, 2]})), "model.joblib", "not a fitted model"),
    "model.tar.gz corrupt": (lambda m: (shutil.rmtree(m), m.mkdir(),
                                        (m / "model.tar.gz").write_bytes(os.urandom(999))),
                             "model.tar.gz", "not a readable tar archive"),
}


def test_a_broken_model_stops_serve_with_one_line_naming_the_file(trained_model, tmp_path):
    runs = {}
    for name, (breaks, _, _) in BROKEN_MODELS.items():
        base = endpoint_tree(trained_model, tmp_path / name.replace(" ", "_"))
        breaks(base / "model")
        runs[name] = (base, Server(base, workers=1).launch())
    failures = []
    for name, (base, server) in runs.items():
        code = server.wait(timeout=120)
        if code is None:
            server.stop()
            failures.append(server.failure(f"{name}: serve did not stop"))
            continue
        server.stop()
        output = server.log()
        _, named, problem = BROKEN_MODELS[name]
        errors = [line for line in output.splitlines() if " ERROR " in line]
        if code == 0:
            failures.append(server.failure(f"{name}: serve exited 0"))
        elif len(errors) != 1 or "Traceback" in output:
            failures.append(f"{name}: expected one error line and no traceback:\n{output}")
        elif str(base / "model") not in errors[0] or named not in errors[0] \
                or problem not in errors[0]:
            failures.append(f"{name}: the error line does not name {named} and "
                            f"'{problem}': {errors[0]}")
    assert not failures, "\n".join(failures)
