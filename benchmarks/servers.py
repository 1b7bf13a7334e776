"""The servers under test, and what the benchmark reads of them.

Each is a ``ServeProcess`` (scripts/serve_process.py, the tests' ``Server``):
on 127.0.0.1 and a free port, in its own process group (so stopping it stops
every worker), logging to a file whose last lines any failure shows.
"""
from __future__ import annotations

import http.client
import os
import select
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from scripts.serve_process import ServeProcess  # noqa: E402

# One worker per core: numerical libraries must not start thread pools of
# their own in each worker.  Set for every server, so that the comparison
# measures the servers and not thread oversubscription.
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict | None = None, timeout: float = 60) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_raw(port: int, body: bytes, content_type: str,
             timeout: float = 60) -> tuple[int | None, bytes, bool]:
    """POST on a raw socket that stops sending once the server answers.

    A server may refuse a body that is too large as soon as it reads the
    headers, and close the connection before the client has sent it all;
    ``http.client`` then fails with a broken pipe and never reads the answer.
    Returns (status or None, answer body, whether the whole body was sent).
    """
    head = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode("ascii")
    view = memoryview(body)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(head)
            while sent < len(view):
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sent += sock.send(view[sent:sent + 256 * 1024])
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = b""
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not data:
                break
            raw += data
            head_end = raw.find(b"\r\n\r\n")
            if head_end >= 0:
                length = _content_length(raw[:head_end])
                if length is not None and len(raw) >= head_end + 4 + length:
                    break
    head_end = raw.find(b"\r\n\r\n")
    if not raw.startswith(b"HTTP/") or head_end < 0:
        return None, raw, sent == len(view)
    try:
        status = int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = None
    return status, raw[head_end + 4:], sent == len(view)


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


class Baseline(ServeProcess):
    """The classic predictor (baseline_server.py) under gunicorn sync workers, started,
    probed and stopped as ``serve`` is."""

    def __init__(self, model_base: Path, env: dict, workers: int, **options):
        super().__init__(model_base, {**env, "BASELINE_MODEL_DIR": str(model_base / "model")},
                         workers=None, **options)
        self.gunicorn_workers = workers

    def command(self) -> list[str]:
        # --no-control-socket: newer gunicorn opens a control socket under
        # $HOME by default, shared by every gunicorn of the user; requests do
        # not touch it.
        return [sys.executable, "-m", "gunicorn", "--worker-class", "sync",
                "--workers", str(self.gunicorn_workers), "--timeout", "60",
                "--bind", f"127.0.0.1:{self.port}", "--no-control-socket",
                "--pythonpath", str(BENCH), "baseline_server:app"]


def server(kind: str, model_base: Path, workers: int, log_dir: Path, *,
           max_payload_mb: int | None = None, previous: Path | None = None) -> ServeProcess:
    """A server under test, not started: ``kind`` is "serve" (this checkout's),
    "previous" (``serve/main.py`` of the checkout at ``previous``) or "baseline".

    ``model_base`` is the /opt/ml-shaped tree; the model is in <base>/model.
    ``max_payload_mb`` sets SAGEMAKER_MAX_PAYLOAD_IN_MB for both serves.
    """
    env = {**SINGLE_THREADED, "PYTHONUNBUFFERED": "1", "SAGEMAKER_MODEL_DIR": None,
           "SAGEMAKER_MAX_PAYLOAD_IN_MB": None if max_payload_mb is None else
           str(max_payload_mb)}
    if kind == "baseline":
        process = Baseline(model_base, env, workers, cwd=ROOT, name=kind, start_timeout=60)
    elif kind == "previous":
        if previous is None:
            raise ValueError("the previous serve needs the folder of its checkout")
        process = ServeProcess(model_base, env, workers, main=previous / "serve" / "main.py",
                               cwd=previous, name=kind, start_timeout=60)
    elif kind == "serve":
        process = ServeProcess(model_base, env, workers, cwd=ROOT, name=kind, start_timeout=60)
    else:
        raise ValueError(f"unknown server kind {kind!r}")
    process.log_path = log_dir / f"{kind}-{process.port}.log"
    return process


def worker_memory(process: ServeProcess) -> list[dict]:
    """VmHWM (peak) and VmRSS of each worker, in bytes, and its CPU time so far."""
    out = []
    for pid in sorted(process.worker_pids()):
        status = proc_status(pid)
        if status.get("VmHWM"):
            out.append({"pid": pid, "peak_bytes": status.get("VmHWM", 0),
                        "rss_bytes": status.get("VmRSS", 0),
                        "cpu_seconds": round(cpu_seconds(pid), 2)})
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, int]:
    """The memory lines of /proc/<pid>/status, in bytes."""
    values = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key.startswith("Vm"):
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                values[key] = int(parts[0]) * 1024
    return values


START_PHASES = ("imports", "model load", "request path check", "app + gunicorn boot",
                "first ping")


def start_phases(process: ServeProcess) -> dict | None:
    """Seconds of each phase of serve's start, from its log's timestamps (the default
    format) and the durations its start-up lines give; None when the lines are not there
    (another format, or a serve that does not log them)."""
    import re
    from datetime import datetime

    def stamp(line: str) -> float:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()

    loaded = checked = booted = None
    for line in process.log().splitlines():
        try:
            if loaded is None and (found := re.search(r" loaded .* in ([\d.]+) s", line)):
                loaded = (stamp(line), float(found[1]))
            elif checked is None and (found := re.search(
                    r" request path: .*\(built and checked in ([\d.]+) ms\)", line)):
                checked = (stamp(line), float(found[1]) / 1000)
            elif booted is None and "Booting worker with pid" in line:
                booted = stamp(line)
        except ValueError:
            return None
    if None in (loaded, checked, booted) or process.started_in is None:
        return None
    ready = process.launched_at + process.started_in
    load_started = loaded[0] - loaded[1] - checked[1]
    return dict(zip(START_PHASES, (
        round(load_started - process.launched_at, 3), loaded[1], checked[1],
        round(booted - checked[0], 3), round(ready - booted, 3))))


def cold_start(kind: str, model_base: Path, workers: int, log_dir: Path,
               previous: Path | None = None) -> tuple[float, dict | None]:
    """Seconds from starting the server to its first 200 on /ping, and (serve) its phases."""
    process = server(kind, model_base, workers, log_dir, previous=previous)
    try:
        process.start()
        return process.started_in, start_phases(process) if kind == "serve" else None
    finally:
        process.stop(timeout=15, quick=True)
