"""What an endpoint's log says, read from the log a ``serve`` process writes.

SageMaker sends the container's stdout and stderr to CloudWatch; a health check
arrives every few seconds, so a passing one must leave no line.
"""
from __future__ import annotations

import json
import re
import time

import pytest
import requests

from scripts.serve_process import ServeProcess as Server

ROW = "49,25,46.22,1161.97,month-to-month,electronic-check,dsl,1,west,no"
# A caller's error whose message quotes a value: "secret-cell" must never reach the log.
BAD_ROW = ROW.replace("25", "secret-cell", 1)
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"


def settle(server) -> str:
    time.sleep(0.3)  # the worker writes its line after the answer is sent
    return server.log()


def access_lines(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if re.search(r" (GET|POST|DELETE) /\S* \d{3} ", line)]


def test_pings_leave_no_line_and_every_invocation_one(serving_tree):
    with Server(serving_tree, workers=1) as server:
        for _ in range(5):
            assert requests.get(server.url + "/ping", timeout=10).status_code == 200
        assert server.invoke(ROW + "\n" + ROW).status_code == 200
        assert server.invoke(ROW, **{INFERENCE_ID: "req-7"}).status_code == 200
        log = settle(server)
    lines = access_lines(log)
    assert not [line for line in lines if "/ping" in line], lines
    assert len(lines) == 2, lines
    first, second = lines
    assert re.search(r" INFO POST /invocations 200 \d+ B 2 rows [\d.]+ ms "
                     r"\(decode [\d.]+, predict [\d.]+, encode [\d.]+\) \[id=[0-9a-f]{16}\]$",
                     first), first
    assert second.endswith("[id=req-7]"), second


def test_warning_level_keeps_only_errors(serving_tree):
    with Server(serving_tree, env={"SAGEMAKER_CONTAINER_LOG_LEVEL": "30"}, workers=1) as server:
        assert server.invoke(ROW).status_code == 200
        assert server.invoke(BAD_ROW).status_code == 400
        log = settle(server)
    lines = access_lines(log)
    assert len(lines) == 1 and " WARNING POST /invocations 400 " in lines[0], log
    assert " INFO " not in log, log


@pytest.mark.parametrize("value, level", [("WARNING", "WARNING"), ("10", "DEBUG")])
def test_level_names_and_numbers(serving_tree, value, level):
    with Server(serving_tree, env={"SAGEMAKER_CONTAINER_LOG_LEVEL": value},
                workers=1) as server:
        assert server.invoke(ROW).status_code == 200
        log = settle(server)
    if level == "WARNING":
        assert access_lines(log) == []
    else:
        assert " DEBUG " in log and len(access_lines(log)) == 1


def test_a_level_that_is_no_level_warns_once_and_logs_at_info(serving_tree):
    with Server(serving_tree, env={"SAGEMAKER_CONTAINER_LOG_LEVEL": "loud"},
                workers=1) as server:
        assert server.invoke(ROW).status_code == 200
        log = settle(server)
    warnings = [line for line in log.splitlines() if "'loud'" in line]
    assert len(warnings) == 1 and "not a log level" in warnings[0]
    assert len(access_lines(log)) == 1


def test_caller_errors_log_the_reason_without_values_and_rate_limited(serving_tree):
    with Server(serving_tree, workers=1) as server:
        answers = [server.invoke(BAD_ROW) for _ in range(25)]
        log = settle(server)
    assert all(a.status_code == 400 for a in answers)
    assert "secret-cell" in answers[0].text  # the caller gets the whole message
    assert "secret-cell" not in log
    reasons = [line for line in log.splitlines() if " WARNING " in line]
    assert len(reasons) == 10, log  # REASONS_PER_WINDOW per worker and minute
    assert all("not a number (row 1, feature 'tenure_months')" in line for line in reasons)
    # The ones held back still leave their access line, at INFO, without a reason.
    assert len(access_lines(log)) == 25


def test_a_server_error_logs_its_traceback(serving_tree):
    code = serving_tree / "model" / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        "def predict_fn(data, model):\n    raise RuntimeError('scoring backend down')\n")
    with Server(serving_tree, workers=1) as server:
        assert server.invoke(ROW).status_code == 500
        log = settle(server)
    assert "Traceback" in log and "scoring backend down" in log
    assert any(" ERROR POST /invocations 500 " in line for line in access_lines(log)), log


def test_json_format_one_object_per_line_with_the_same_fields(serving_tree):
    with Server(serving_tree, env={"SKLEARN_BYOC_LOG_FORMAT": "json"}, workers=1) as server:
        assert server.invoke(ROW, **{INFERENCE_ID: "req-9"}).status_code == 200
        assert server.invoke(BAD_ROW).status_code == 400
        log = settle(server)
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert {e["stage"] for e in entries} == {"serve"}
    invocations = [e for e in entries if e.get("path") == "/invocations"]
    ok, bad = invocations
    assert ok["status"] == 200 and ok["rows"] == 1 and ok["request_id"] == "req-9"
    assert {"decode_ms", "predict_ms", "encode_ms", "duration_ms", "bytes"} <= set(ok)
    assert bad["level"] == "WARNING" and bad["reason"].startswith("not a number")
    # gunicorn's own lines come out as JSON objects too.
    assert any("Booting worker" in e["message"] for e in entries)
