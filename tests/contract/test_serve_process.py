"""``ServeProcess`` (scripts/serve_process.py), the one way the tests, the benchmark and the
demo run ``serve``: what a caller sees when a start fails, and what a stop leaves behind."""
from __future__ import annotations

import signal
import time

import pytest

from scripts.serve_process import ServerError, process_state
from scripts.serve_process import ServeProcess as Server


def test_a_failed_start_raises_with_the_end_of_the_server_log(tmp_path):
    server = Server(tmp_path, workers=1)  # no model folder: serve stops at once
    with pytest.raises(ServerError) as caught:
        server.start(timeout=60)
    message = str(caught.value)
    assert "serve exited with 1 before answering /ping" in message
    assert str(server.log_path) in message
    # serve's own one-line reason, read from its log
    assert str(tmp_path / "model") in message and "ERROR" in message


def test_a_server_that_never_answers_is_stopped_and_reported(tmp_path):
    # A stand-in that runs and listens to nothing: the bounded wait ends the start.
    server = Server(tmp_path, workers=1, main=tmp_path / "silent.py")
    (tmp_path / "silent.py").write_text(
        "import sys, time\nprint('listening on nothing', flush=True)\ntime.sleep(600)\n")
    with pytest.raises(ServerError) as caught:
        server.start(timeout=5)
    assert "did not answer /ping within 5 s" in str(caught.value)
    assert "listening on nothing" in str(caught.value)
    assert server.process.poll() is not None


def test_sigterm_stops_the_master_and_every_worker(serving_tree):
    with Server(serving_tree, workers=2) as server:
        workers = server.wait_for_workers(2)
        assert server.started_in is not None and server.started_in > 0
        assert server.booted() == 2
        assert server.invoke("49,25,46.22,1161.97,month-to-month,electronic-check,dsl,1,west,no"
                             ).status_code == 200
    assert server.process.returncode == 0, server.log_tail()
    assert {process_state(pid) for pid in workers} == {"X"}


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path):
    (tmp_path / "stubborn.py").write_text(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring SIGTERM', flush=True)\ntime.sleep(600)\n")
    server = Server(tmp_path, workers=1, main=tmp_path / "stubborn.py").launch()
    deadline = time.monotonic() + 30
    while "ignoring SIGTERM" not in server.log():
        assert time.monotonic() < deadline and server.process.poll() is None, \
            server.failure("the stand-in did not start")
        time.sleep(0.05)
    assert server.stop(timeout=1) == -signal.SIGKILL


def test_the_environment_and_the_port(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "1")
    monkeypatch.delenv("SAGEMAKER_MODEL_SERVER_WORKERS", raising=False)
    server = Server(tmp_path, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": None,
                               "SAGEMAKER_BIND_TO_PORT": "18080"},
                    workers=None, port_argument=False)
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB" not in server.env
    assert "SAGEMAKER_MODEL_SERVER_WORKERS" not in server.env
    assert server.env["SAGEMAKER_BASE_DIR"] == str(tmp_path)
    assert Server(tmp_path, workers=3).env["SAGEMAKER_MODEL_SERVER_WORKERS"] == "3"
    assert server.port == 18080 and "--port" not in server.command()
    monkeypatch.delenv("SAGEMAKER_BIND_TO_PORT", raising=False)
    with pytest.raises(ValueError, match="SAGEMAKER_BIND_TO_PORT"):
        Server(tmp_path, port_argument=False)
