"""Hostile input against a real ``serve`` process: every caller error is a 4xx
with a plain-text message, nothing answers 5xx, no worker dies, and the
endpoint still predicts correctly afterwards.

Two kinds of requests: a fixed corpus of known-nasty ones, each with the status
it must get, and a few thousand drawn by Hypothesis (``HARDENING_FUZZ_EXAMPLES``,
default 1500; tests/hardening/hostile.py says what they hold).  A worker that
died would show as a changed worker pid or an extra "Booting worker" line in
the server log.  ``pytest -s`` prints the figures.
"""
from __future__ import annotations

import os
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings

from tests.hardening.endpoint import (FEATURES, ROW, check_caller_error, endpoint_tree,
                                      parse_status, predict_one, raw_exchange)
from scripts.serve_process import ServeProcess as Server
from tests.hardening.hostile import Request, hostile_requests

FUZZ_EXAMPLES = int(os.environ.get("HARDENING_FUZZ_EXAMPLES", "1500"))
FIGURES = {"requests": 0, "2xx": 0, "4xx": 0, "5xx": 0, "client errors": 0}


@pytest.fixture(scope="module")
def endpoint(trained_model, tmp_path_factory):
    base = endpoint_tree(trained_model, tmp_path_factory.mktemp("hostile"))
    server = Server(base, workers=2).start()
    server.wait_for_workers(2)
    server.initial = (server.worker_pids(), server.booted())
    yield server
    server.stop()
    print(f"\nhostile input: {FIGURES}")


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def send(endpoint, session, request: Request) -> requests.Response:
    FIGURES["requests"] += 1
    try:
        answer = session.post(endpoint.url + "/invocations", data=request.body,
                              headers=request.headers(), timeout=30)
    except requests.RequestException:
        FIGURES["client errors"] += 1
        raise
    FIGURES[f"{answer.status_code // 100}xx"] = FIGURES.get(f"{answer.status_code // 100}xx",
                                                            0) + 1
    return answer


def check_answer(answer: requests.Response, request: Request) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text[:500], request)
    content_type = answer.headers.get("Content-Type", "")
    if answer.status_code >= 400:
        check_caller_error(answer.status_code, content_type, answer.text, request)
    else:
        assert answer.status_code == 200, (answer.status_code, request)
        assert answer.content, request
        # One of the four types served: an Accept naming NPY (application/npy, say), or an
        # NPY request without an Accept, is answered in NPY.
        assert content_type.split(";")[0] in ("text/csv", "application/json",
                                              "application/jsonlines",
                                              "application/x-npy"), content_type
        if content_type == "application/x-npy":
            assert "npy" in f"{request.accept} {request.content_type}".lower(), request


def check_workers_intact(endpoint) -> None:
    pids, booted = endpoint.initial
    assert endpoint.process.poll() is None, endpoint.log()[-3000:]
    assert endpoint.worker_pids() == pids, "a worker died and was replaced"
    assert endpoint.booted() == booted, "gunicorn booted a new worker"
    # ...and the endpoint still predicts correctly.
    predict_one(endpoint)


# -- a fixed corpus ----------------------------------------------------------------------
def row_with(first: str) -> str:
    return first + ROW[ROW.index(","):]


CSV, JSON, JSONL = "text/csv", "application/json", "application/jsonlines"
JSON_ROW = '[49,25,46.22,1161.97,"month-to-month","electronic-check","dsl",1,"west","no"]'
HEADER = ",".join(FEATURES)
CORPUS = [
    # (name, content type, body, extra headers, expected status)
    ("valid row", CSV, ROW, {}, 200),
    ("nan is missing", CSV, row_with("nan"), {}, 200),
    ("inf", CSV, row_with("inf"), {}, 400),
    ("1e309 overflows", CSV, row_with("1e309"), {}, 400),
    ("-1e309", CSV, row_with("-1e309"), {}, 400),
    ("400 digits", CSV, row_with("9" * 400), {}, 400),
    ("1e309 in a large body", CSV, (row_with("1e309") + "\n") * 2000, {}, 400),
    ("JSON 1e309", JSON, JSON_ROW.replace("49", "1e309", 1), {}, 400),
    ("JSON Infinity", JSON, JSON_ROW.replace("49", "-Infinity", 1), {}, 400),
    ("JSON NaN is missing", JSON, JSON_ROW.replace("49", "NaN", 1), {}, 200),
    ("JSON 400-digit integer", JSON, JSON_ROW.replace("49", "9" * 400, 1), {}, 400),
    ("JSON 5000-digit integer", JSON, JSON_ROW.replace("49", "9" * 5000, 1), {}, 400),
    ("JSON Lines 5000-digit integer", JSONL, JSON_ROW.replace("49", "9" * 5000, 1), {}, 400),
    ("JSON object with a list value", JSON, '{"customer_age": [1, 2]}', {}, 400),
    ("JSON objects with one-item lists", JSON,
     '[{"customer_age": [1]}, {"customer_age": [2]}]', {}, 400),
    ("JSON nested 100000 deep", JSON, "[" * 100000 + "]" * 100000, {}, 400),
    ("JSON objects nested 50000 deep", JSON, '{"a":' * 50000 + "1" + "}" * 50000, {}, 400),
    ("JSON Lines nested deep", JSONL, "[" * 100000 + "]" * 100000, {}, 400),
    ("JSON null", JSON, "null", {}, 400),
    ("JSON empty list", JSON, "[]", {}, 400),
    ("JSON empty object", JSON, "{}", {}, 400),
    ("JSON rows of mixed kinds", JSON, '[[1, 2], {"a": 1}]', {}, 400),
    ("JSON truncated", JSON, JSON_ROW[:-3], {}, 400),
    ("JSON with a UTF-8 BOM", JSON, "\ufeff" + JSON_ROW, {}, 200),
    ("CSV with a UTF-8 BOM", CSV, "\ufeff" + ROW, {}, 200),
    ("empty body", CSV, "", {}, 400),
    ("whitespace body", CSV, " \n\n ", {}, 400),
    ("empty JSON body", JSON, "", {}, 400),
    ("one line of a million columns", CSV, "1," * 1_000_000, {}, 400),
    ("a 200 KB quoted value", CSV, '"' + "a" * 200_000 + '",1', {}, 400),
    ("a 1 MB unquoted value", CSV, ROW.replace("month-to-month", "m" * 1_000_000), {}, 200),
    ("a quoted 200 KB value in a large body", CSV,
     (ROW + "\n") * 2000 + '"' + "a" * 200_000 + '",1\n', {}, 400),
    ("bare carriage returns", CSV, (ROW + "\r") * 3, {}, 200),
    ("bare carriage returns in a large body", CSV, (ROW + "\r") * 2000 + "\n", {}, 200),
    ("carriage returns and quotes", CSV, (ROW.replace("west", '"west"') + "\r") * 3, {}, 200),
    ("a value holding U+2028", CSV, ROW.replace("west", "we\u2028st"), {}, 200),
    ("a JSON Lines string holding U+2028", JSONL,
     '{"region": "we\u2028st", "customer_age": 3}\n{"region": "x\x85y"}', {}, 200),
    ("wrong column count", CSV, "1,2,3", {}, 400),
    ("target column included", CSV, ROW + ",yes", {}, 400),
    ("wrong column count in a large body", CSV, (ROW + "\n") * 2000 + "1,2\n", {}, 400),
    ("header only", CSV, HEADER, {}, 400),
    ("header then a row", CSV, HEADER + "\n" + ROW, {}, 200),
    ("header with the target", CSV, HEADER + ",churn\n" + ROW + ",yes", {}, 200),
    ("header with a duplicate", CSV, HEADER.replace("tenure_months", "customer_age") + "\n" + ROW,
     {}, 400),
    ("header with an unknown name", CSV, HEADER.replace("region", "planet") + "\n" + ROW, {}, 400),
    ("unterminated quote", CSV, '"abc,1,2', {}, 400),
    ("NUL in a number", CSV, ROW.replace("25", "2\x005"), {}, 400),
    ("random bytes", CSV, bytes(range(256)) * 8, {}, 400),
    ("random bytes as JSON", JSON, bytes(range(256)) * 8, {}, 400),
    ("latin-1 bytes said to be UTF-8", CSV, ROW.replace("west", "w\xe9st").encode("latin-1"), {},
     400),
    ("latin-1 bytes with their charset", CSV + "; charset=latin-1",
     ROW.replace("west", "w\xe9st").encode("latin-1"), {}, 200),
    ("UTF-16 with a BOM said to be UTF-8", CSV, ROW.encode("utf-16"), {}, 400),
    ("UTF-16 with its charset", CSV + "; charset=utf-16", ROW.encode("utf-16"), {}, 200),
    ("UTF-16 large body", CSV + "; charset=utf-16", ((ROW + "\n") * 3000).encode("utf-16"), {},
     200),
    ("unknown charset", CSV + "; charset=rot13", ROW, {}, 415),
    ("a codec that is not a charset", CSV + "; charset=base64", ROW, {}, 415),
    ("empty charset", CSV + "; charset=", ROW, {}, 415),
    ("image content type", "image/png", ROW, {}, 415),
    ("pickle content type", "application/python-pickle", b"\x80\x04K\x01.", {}, 415),
    ("truncated NPY body", "application/x-npy", b"\x93NUMPY", {}, 400),
    ("NPY object array (would need unpickling)", "application/x-npy",
     b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
     + b" " * 53 + b"\n\x80\x04K\x01.", {}, 400),
    ("form content type", "application/x-www-form-urlencoded", "a=1", {}, 415),
    ("missing content type means CSV", None, ROW, {}, 200),
    ("unknown accept", CSV, ROW, {"Accept": "image/png"}, 406),
    ("accept with q=0 only", CSV, ROW, {"Accept": "text/csv;q=0"}, 406),
    ("accept with a NaN q", CSV, ROW, {"Accept": "text/csv;q=nan"}, 200),
    ("accept 2000 entries long", CSV, ROW, {"Accept": "a/b," * 2000}, 406),
    ("unknown output", CSV, ROW, {"X-Amzn-SageMaker-Custom-Attributes": "output=everything"}, 400),
    ("long custom attributes", CSV, ROW, {"X-Amzn-SageMaker-Custom-Attributes": "x=y;" * 256},
     200),
    ("probabilities", CSV, ROW, {"X-Amzn-SageMaker-Custom-Attributes": "output=all"}, 200),
]


@pytest.mark.parametrize("name, content_type, body, headers, expected", CORPUS,
                         ids=[c[0] for c in CORPUS])
def test_known_hostile_requests(endpoint, session, name, content_type, body, headers,
                                expected):
    request = Request(content_type, headers.get("Accept"),
                      headers.get("X-Amzn-SageMaker-Custom-Attributes"),
                      body.encode("utf-8") if isinstance(body, str) else body)
    answer = send(endpoint, session, request)
    check_answer(answer, name)
    assert answer.status_code == expected, (name, answer.status_code, answer.text[:300])


def test_a_refused_body_left_unread_does_not_break_the_kept_alive_connection(endpoint):
    """A 406 or 415 is answered before the body is decoded; the next request on the same
    connection must still be answered (gunicorn's threaded worker dropped it when the
    refused body was left unread)."""
    body = ("\n".join(['{"region": "west", "customer_age": 3}'] * 4000)).encode()
    assert len(body) > 100_000
    refusals = [("application/x-jsonlines", "_."), ("image/png", "text/csv")]
    statuses = []
    with requests.Session() as session:
        for i in range(40):
            content_type, accept = refusals[i % 2] if i % 4 < 2 else (CSV, "text/csv")
            data = body if content_type != CSV else ROW.encode()
            try:
                answer = session.post(endpoint.url + "/invocations", data=data, timeout=30,
                                      headers={"Content-Type": content_type, "Accept": accept})
            except requests.ConnectionError as exc:
                pytest.fail(endpoint.failure(f"request {i + 1} ({content_type}, Accept "
                                             f"{accept}) got no answer: {exc}"))
            statuses.append(answer.status_code)
    assert statuses == [406, 415, 200, 200] * 10, statuses


def test_the_corpus_killed_no_worker(endpoint):
    check_workers_intact(endpoint)


# -- malformed HTTP around the body ---------------------------------------------------------
def test_malformed_request_bodies_are_caller_errors(endpoint):
    head = f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{endpoint.port}\r\n"
    cases = {
        "bad chunk size": head + "Transfer-Encoding: chunked\r\nContent-Type: text/csv\r\n\r\n"
                                 "zz\r\n",
        "bad chunk terminator": head + "Transfer-Encoding: chunked\r\nContent-Type: text/csv\r\n"
                                       "\r\n5\r\n1,2,3XX\r\n0\r\n\r\n",
        "chunked body": head + "Transfer-Encoding: chunked\r\nContent-Type: text/csv\r\n\r\n"
                               f"{len(ROW):x}\r\n{ROW}\r\n0\r\n\r\n",
    }
    for name, raw in cases.items():
        FIGURES["requests"] += 1
        status, content_type, text = parse_status(raw_exchange(endpoint.port, raw.encode()))
        if name == "chunked body":
            assert status == 200 and text.strip() in ("yes", "no"), (name, status, text)
        else:
            check_caller_error(status, content_type, text, name)
    check_workers_intact(endpoint)


# -- thousands of random requests -----------------------------------------------------------
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(request=hostile_requests())
def test_random_requests_get_no_5xx(endpoint, session, request):
    check_answer(send(endpoint, session, request), request)


def test_no_worker_died_and_the_endpoint_still_answers(endpoint, session):
    started = time.monotonic()
    check_workers_intact(endpoint)
    answer = session.post(endpoint.url + "/invocations", data=(ROW + "\n") * 3,
                          headers={"Content-Type": "text/csv", "Accept": "application/json"},
                          timeout=30)
    assert answer.status_code == 200
    assert len(answer.json()["predictions"]) == 3
    assert time.monotonic() - started < 10
    log = endpoint.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:4000]
    assert FIGURES["5xx"] == 0 and FIGURES["client errors"] == 0, FIGURES
