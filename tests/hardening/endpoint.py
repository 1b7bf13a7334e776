"""Helpers for the hardening tests of ``serve`` (not a test module).

* :func:`predict_one`: one valid request, which must be answered with a class;
* the workers' resident memory;
* :func:`check_caller_error`: what every refused request must look like;
* small request helpers over raw sockets, for what ``requests`` will not send.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

from scripts.serve_process import ServeProcess as Server

ROW = "49,25,46.22,1161.97,month-to-month,electronic-check,dsl,1,west,no"
FEATURES = ["customer_age", "tenure_months", "monthly_charges", "total_charges", "contract",
            "payment_method", "internet_service", "support_calls", "region",
            "paperless_billing"]
CLASSES = {"no", "yes"}


def predict_one(server: Server) -> str:
    """A valid request; returns the label, failing the test if it is not one."""
    answer = server.invoke(ROW, timeout=30)
    assert answer.status_code == 200, server.failure(f"{answer.status_code}: {answer.text}")
    label = answer.text.strip()
    assert label in CLASSES, server.failure(f"not a class: {answer.text!r}")
    return label


def endpoint_tree(trained_model: Path, target: Path) -> Path:
    shutil.copytree(trained_model / "model", target / "model")
    return target


def rss_bytes(pid: int) -> int:
    """Resident memory of one process, from /proc (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def check_caller_error(status: int, content_type: str | None, text: str, what) -> None:
    """A refused request: 4xx, a short plain-text message, no traceback, no HTML page."""
    assert 400 <= status < 500, f"{what!r} answered {status}: {text[:300]!r}"
    assert (content_type or "").startswith("text/plain"), (what, status, content_type)
    assert text.strip(), (what, status, "empty message")
    for leak in ("Traceback", "<html", "<!doctype", 'File "'):
        assert leak.lower() not in text.lower(), (what, status, text[:500])


def raw_exchange(port: int, data: bytes, *, read_timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection and read what comes back until it closes
    or goes quiet; for requests ``requests`` refuses to form."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if _complete(received):
                    break
        except (socket.timeout, ConnectionResetError):
            pass
    return received


def read_answer(sock: socket.socket) -> bytes:
    """One HTTP answer (headers and a Content-Length body) from ``sock``."""
    received = b""
    while not _complete(received):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip() or 0)
    return False


def parse_status(response: bytes) -> tuple[int, str, str]:
    """(status, content type, body) of a raw HTTP answer."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    content_type = ""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            content_type = value.strip().decode("latin-1")
    return status, content_type, body.decode("utf-8", "replace")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
