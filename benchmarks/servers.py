"""Starting, probing and stopping the two servers under test.

Both listen on 127.0.0.1 and a free port, run in their own process group
(so stopping them stops every worker), and log to a file the benchmark shows
when something goes wrong.
"""
from __future__ import annotations

import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent

# One worker per core: numerical libraries must not start thread pools of
# their own in each worker.  Set for both servers, so that the comparison
# measures the servers and not thread oversubscription.
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


class ServerProcess:
    """A server under test: ``kind`` is "serve" or "baseline"."""

    def __init__(self, kind: str, model_base: Path, workers: int, log_dir: Path,
                 max_payload_mb: int | None = None):
        self.kind = kind
        self.model_base = model_base  # the /opt/ml-shaped tree; the model is in <base>/model
        self.workers = workers
        self.max_payload_mb = max_payload_mb
        self.port = free_port()
        self.log_path = log_dir / f"{kind}-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self._log = None
        self.started_at = 0.0
        self.ready_after = None  # seconds from start to the first 200 on /ping

    # -- command lines ---------------------------------------------------------
    def command(self) -> tuple[list[str], dict]:
        env = {**os.environ, **SINGLE_THREADED, "PYTHONUNBUFFERED": "1"}
        if self.kind == "serve":
            env.update({"SAGEMAKER_BASE_DIR": str(self.model_base),
                        "SAGEMAKER_MODEL_SERVER_WORKERS": str(self.workers)})
            env.pop("SAGEMAKER_MODEL_DIR", None)
            if self.max_payload_mb is not None:
                env["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(self.max_payload_mb)
            else:
                env.pop("SAGEMAKER_MAX_PAYLOAD_IN_MB", None)
            return [sys.executable, str(ROOT / "serve" / "main.py"), "serve",
                    "--host", "127.0.0.1", "--port", str(self.port)], env
        env["BASELINE_MODEL_DIR"] = str(self.model_base / "model")
        # --no-control-socket: newer gunicorn opens a control socket under
        # $HOME by default, shared by every gunicorn of the user; requests do
        # not touch it.
        return [sys.executable, "-m", "gunicorn", "--worker-class", "sync",
                "--workers", str(self.workers), "--timeout", "60",
                "--bind", f"127.0.0.1:{self.port}", "--no-control-socket",
                "--pythonpath", str(BENCH), "baseline_server:app"], env

    # -- life cycle ------------------------------------------------------------
    def start(self, timeout: float = 60) -> "ServerProcess":
        """Start and wait for the first 200 on /ping; records the time it took."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> "ServerProcess":
        args, env = self.command()
        self._log = self.log_path.open("ab")
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(args, env=env, cwd=ROOT, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 60) -> "ServerProcess":
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise RuntimeError(f"{self.kind} exited with {code} before answering /ping; "
                                   f"its log ends:\n{self.log_tail()}")
            try:
                status, _ = http_request(self.port, "GET", "/ping", timeout=2)
            except OSError:
                status = None
            if status == 200:
                self.ready_after = time.perf_counter() - self.started_at
                return self
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer /ping within {timeout:.0f} s; its log "
                           f"ends:\n{self.log_tail()}")

    def stop(self, timeout: float = 15) -> None:
        """SIGINT (gunicorn's quick shutdown) to the master; once its workers are gone
        (or after ``timeout``), SIGKILL to the whole process group.

        Quick, not graceful: nothing is in flight when the benchmark stops a
        server, and a graceful stop waits on idle keep-alive connections.
        """
        process, self.process = self.process, None
        if process is not None:
            self.interrupt(process)
            # The gunicorn master lingers a few seconds after its workers are
            # gone; with no worker left there is nothing more to wait for.
            deadline = time.perf_counter() + timeout
            while process.poll() is None and time.perf_counter() < deadline:
                if not [pid for pid in children(process.pid) if not zombie(pid)]:
                    break
                time.sleep(0.05)
            self._signal_group(process, signal.SIGKILL)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def interrupt(self, process: subprocess.Popen | None = None) -> None:
        process = process or self.process
        if process is not None and process.poll() is None:
            try:
                process.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    @staticmethod
    def _signal_group(process: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- workers -----------------------------------------------------------------
    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the master's children."""
        if self.process is None:
            return []
        return children(self.process.pid)

    def worker_memory(self) -> list[dict]:
        """VmHWM (peak) and VmRSS of each worker, in bytes, and its CPU time so far."""
        out = []
        for pid in self.worker_pids():
            status = proc_status(pid)
            if status.get("VmHWM") and not zombie(pid):
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


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        pass
    found = []  # kernels without the children file: scan every process's parent
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits for its parent to reap it (or is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


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


def cold_start(kind: str, model_base: Path, workers: int, log_dir: Path,
               timeout: float = 60) -> float:
    """Seconds from starting the server to its first 200 on /ping."""
    server = ServerProcess(kind, model_base, workers, log_dir)
    try:
        server.start(timeout=timeout)
        return server.ready_after
    finally:
        server.stop()
