"""Limits ``serve`` enforces: the payload size and the request time.

* A body above SAGEMAKER_MAX_PAYLOAD_IN_MB answers 413 as soon as the headers
  announce it: the test sends only the headers and gets the answer, the
  connection is then closed, so the body is never read.  A chunked body that
  grows past the limit is cut with 413 as well; one just under it is served.
* A request that runs past SAGEMAKER_MODEL_SERVER_TIMEOUT gets an error, not a
  hang: its worker is replaced and the endpoint goes on answering.
"""
from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.contract.hosting import SLOW_INFERENCE, add_inference_code, wait_for
from tests.hardening.endpoint import (ROW, check_caller_error, endpoint_tree, parse_status,
                                      raw_exchange, read_answer)
from scripts.serve_process import ServeProcess as Server

LIMIT_MB = 1


@pytest.fixture(scope="module")
def endpoint(trained_model, tmp_path_factory):
    base = endpoint_tree(trained_model, tmp_path_factory.mktemp("limits"))
    with Server(base, {"SAGEMAKER_MAX_PAYLOAD_IN_MB": str(LIMIT_MB)}, workers=2) as server:
        yield server


def headers_only(endpoint, length: int, content_type: str = "text/csv") -> str:
    return (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{endpoint.port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n")


@pytest.mark.parametrize("length", [LIMIT_MB * 2**20 + 1, 100 * 2**20, 2**40])
def test_a_body_above_the_limit_is_refused_before_it_is_sent(endpoint, length):
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(headers_only(endpoint, length).encode())  # and not one byte of body
        answer = read_answer(sock)
        elapsed = time.monotonic() - started
        status, content_type, text = parse_status(answer)
        # The server does not wait for the announced body: it closes the connection.
        sock.settimeout(5)
        rest = b""
        try:
            while chunk := sock.recv(65536):
                rest += chunk
        except (ConnectionResetError, socket.timeout) as exc:
            rest = type(exc).__name__.encode()
    assert status == 413, answer
    check_caller_error(status, content_type, text, length)
    assert f"{LIMIT_MB} MB" in text and "SAGEMAKER_MAX_PAYLOAD_IN_MB" in text
    assert elapsed < 2, elapsed
    assert rest in (b"", b"ConnectionResetError"), rest


def test_a_chunked_body_growing_past_the_limit_is_refused(endpoint):
    chunk = (ROW + "\n") * 1000
    size = len(chunk.encode())
    chunks = LIMIT_MB * 2**20 // size + 2
    body = "".join(f"{size:x}\r\n{chunk}\r\n" for _ in range(chunks)) + "0\r\n\r\n"
    raw = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{endpoint.port}\r\n"
           "Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n" + body).encode()
    status, content_type, text = parse_status(raw_exchange(endpoint.port, raw))
    assert status == 413, text
    check_caller_error(status, content_type, text, "chunked")


def test_a_body_just_under_the_limit_is_served(endpoint):
    line = ROW + "\n"
    rows = (LIMIT_MB * 2**20 - 1) // len(line)
    answer = requests.post(endpoint.url + "/invocations", data=line * rows,
                           headers={"Content-Type": "text/csv"}, timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.text.splitlines()) == rows


@pytest.mark.slow
def test_a_request_past_the_timeout_gets_an_error_not_a_hang(trained_model, tmp_path):
    timeout = 3
    base = endpoint_tree(trained_model, tmp_path)
    add_inference_code(base / "model", SLOW_INFERENCE)
    with Server(base, {"SAGEMAKER_MODEL_SERVER_TIMEOUT": str(timeout)}, workers=1) as server:
        workers = server.wait_for_workers(1)
        booted = server.booted()
        started = time.monotonic()
        try:
            answer = requests.post(server.url + "/invocations", data="600",
                                   headers={"Content-Type": "text/csv"}, timeout=20)
            outcome = answer.status_code
        except requests.ConnectionError as exc:
            outcome = type(exc).__name__
        except requests.Timeout:
            outcome = "hang"
        elapsed = time.monotonic() - started
        print(f"\nrequest past the {timeout} s timeout: {outcome} after {elapsed:.2f} s")
        assert outcome == "ConnectionError" or (isinstance(outcome, int) and outcome >= 500), \
            outcome
        assert timeout <= elapsed < timeout + 5, elapsed

        def replaced():
            pids = server.worker_pids()
            # the new worker logs its boot after it exists: wait for both
            return pids if len(pids) == 1 and not pids & workers and server.announced(pids) \
                else None

        assert wait_for(replaced, 30), "the worker was not replaced"
        assert server.booted() == booted + 1
        answer = requests.post(server.url + "/invocations", data="0",
                               headers={"Content-Type": "text/csv"}, timeout=30)
        assert answer.status_code == 200, answer.text
    assert f"SAGEMAKER_MODEL_SERVER_TIMEOUT={timeout}" in server.log()


@pytest.mark.parametrize("request_bytes, status", [
    (b"GARBAGE\r\n\r\n", 400),                                            # no method or path
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),     # request line too long
    (b"GET /ping HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200))
     + b"\r\n", 431),                                                     # too many headers
])
def test_requests_gunicorn_cannot_parse_get_plain_text(endpoint, request_bytes, status):
    got, content_type, body = parse_status(raw_exchange(endpoint.port, request_bytes))
    assert got == status
    assert content_type.startswith("text/plain")
    assert "<html" not in body.lower() and str(status) in body
