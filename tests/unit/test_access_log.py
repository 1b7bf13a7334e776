"""The endpoint's access log: the caller-error limiter, the reason without values, the
JSON and text formats."""
from __future__ import annotations

import json
import logging

from sklearn_byoc.common.logs import JsonFormatter, TextFormatter
from sklearn_byoc.serve.access import ReasonLimiter
from sklearn_byoc.serve.errors import RequestError


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_limiter_admits_a_few_per_window_and_counts_the_rest():
    clock = FakeClock()
    limiter = ReasonLimiter(limit=3, window=60, clock=clock)
    assert [limiter.admit()[0] for _ in range(5)] == [True, True, True, False, False]
    clock.now = 59.9
    assert limiter.admit() == (False, 0)
    clock.now = 60.0
    # The first reason of a new window says how many were held back.
    assert limiter.admit() == (True, 3)
    assert limiter.admit() == (True, 0)


def test_reason_names_the_problem_and_where_never_the_value():
    exc = RequestError("row 4, feature 'age': expected a number, got 'alice@example.com'",
                       kind="not a number", row=4, feature="age")
    assert exc.log_reason() == "not a number (row 4, feature 'age')"
    assert "alice" not in exc.log_reason()
    # A handler's own RequestError: only that the model's code refused the request.
    assert RequestError("customer alice is not known", status=422).log_reason() == \
        "bad request"


def record(message: str, **fields) -> logging.LogRecord:
    entry = logging.LogRecord("serve.access", logging.WARNING, __file__, 1, message, (), None)
    for key, value in fields.items():
        setattr(entry, key, value)
    return entry


def test_json_lines_carry_the_fields():
    line = JsonFormatter("serve").format(record("POST /invocations 400", status=400,
                                                rows=None, request_id="r-1"))
    entry = json.loads(line)
    assert entry["stage"] == "serve" and entry["level"] == "WARNING"
    assert entry["status"] == 400 and entry["request_id"] == "r-1"
    assert "rows" not in entry  # fields without a value are left out


def test_text_lines_end_with_the_request_id_before_a_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        entry = record("failed", request_id="r-2")
        entry.exc_info = sys.exc_info()
    text = TextFormatter("serve").format(entry)
    first, rest = text.split("\n", 1)
    assert first.endswith("failed [id=r-2]") and "Traceback" in rest
