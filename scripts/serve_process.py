"""``serve`` as a local process, for the tests, the benchmark and the demo.

    with ServeProcess(base, env={"SAGEMAKER_BATCH": "true"}) as server:
        answer = server.invoke(b"1,2,3", "text/csv")

It starts ``python serve/main.py serve --host 127.0.0.1 --port P`` on an
/opt/ml-shaped tree (SAGEMAKER_BASE_DIR), waits for the first 200 on
``/ping``, and stops it with SIGTERM, as SageMaker does on scale-in. The
process writes its own log (stdout and stderr) to a file; every start that
fails, and every check here that fails, ends its message with the last lines
of that log.

Only the standard library is needed to start, probe and stop a server, so
``make demo`` runs it on the image's own pins; ``invoke`` uses ``requests``,
one of the test tools (requirements-dev.txt).
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVE_MAIN = ROOT / "serve" / "main.py"
LOG_LINES = 40  # of the server's log, in failure messages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerError(RuntimeError):
    """The server did not start, or is not in the state a caller waited for."""


class ServeProcess:
    """One ``serve`` process on 127.0.0.1.

    ``base``: the /opt/ml-shaped tree (SAGEMAKER_BASE_DIR); the log goes to
    ``<base>/serve.log`` unless ``log_path`` says otherwise.
    ``env``: added to this process's environment; a value of None removes the
    variable.
    ``workers``: SAGEMAKER_MODEL_SERVER_WORKERS; None leaves it as the
    environment has it (unset, normally: serve's own default applies).
    ``port_argument=False``: no ``--port``; serve takes the port from
    SAGEMAKER_BIND_TO_PORT, which ``env`` must then give, as in an inference
    pipeline.
    ``prefix``: a command serve runs under (``setpriv ...`` to change user).
    ``main``: the ``serve/main.py`` to run (another checkout's, to compare
    versions); ``name`` is what messages call the server.
    """

    def __init__(self, base: Path, env: dict | None = None, workers: int | None = 2, *,
                 main: Path = SERVE_MAIN, prefix: list[str] = (), port_argument: bool = True,
                 cwd: Path | None = None, log_path: Path | None = None,
                 start_timeout: float = 90, name: str = "serve"):
        self.base = Path(base)
        self.name = name
        self.env = dict(os.environ)
        self.env["SAGEMAKER_BASE_DIR"] = str(self.base)
        if workers is not None:
            self.env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
        for name, value in (env or {}).items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = str(value)
        self.port_argument = port_argument
        if port_argument:
            self.port = free_port()
        else:
            try:
                self.port = int(self.env["SAGEMAKER_BIND_TO_PORT"])
            except (KeyError, ValueError):
                raise ValueError("port_argument=False needs SAGEMAKER_BIND_TO_PORT in env") \
                    from None
        self.main = Path(main)
        self.prefix = list(prefix)
        self.cwd = cwd
        self.log_path = Path(log_path) if log_path else self.base / "serve.log"
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.started_at: float | None = None  # time.perf_counter() at launch
        self.started_in: float | None = None  # seconds from launch to the first 200 on /ping
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [*self.prefix, sys.executable, str(self.main), "serve", "--host", "127.0.0.1"]
        if self.port_argument:
            command += ["--port", str(self.port)]
        return command

    # -- life cycle --------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> "ServeProcess":
        """Launch, then wait for the first 200 on /ping."""
        return self.launch().wait_ready(timeout)

    def launch(self) -> "ServeProcess":
        """Start the process without waiting for it (``wait_ready`` waits)."""
        if self.process is not None:
            raise ServerError(f"already launched (pid {self.process.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.started_in = None
        self.started_at = time.perf_counter()
        self.launched_at = time.time()  # to compare with the log's timestamps
        try:
            # A session of its own: stop() can then reach the workers too, even when
            # the master is gone.
            self.process = subprocess.Popen(
                self.command(), env=self.env, cwd=self.cwd, stdout=self._log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            self._close_log()
            raise ServerError(f"cannot run {self.command()}: {exc}") from exc
        return self

    def wait_ready(self, timeout: float | None = None) -> "ServeProcess":
        """Wait for the first 200 on /ping; on failure, stop the server and raise with its
        log."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise ServerError(self.failure(f"{self.name} exited with {code} before "
                                               "answering /ping"))
            if self.ping(timeout=2) == 200:
                self.started_in = time.perf_counter() - self.started_at
                return self
            time.sleep(0.01)
        self.stop()
        raise ServerError(self.failure(f"{self.name} did not answer /ping within "
                                       f"{timeout:g} s"))

    def ping(self, timeout: float = 2) -> int | None:
        """The status of one GET /ping, or None when nothing answers."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", "/ping")
            return connection.getresponse().status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()

    def wait(self, timeout: float) -> int | None:
        """Wait for the process to end by itself: its exit code, or None if it still runs."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        """Signal the master without waiting (gunicorn passes SIGTERM/SIGINT to its workers)."""
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.send_signal(sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 30, *, quick: bool = False) -> int | None:
        """Stop the server and return its exit code (None if it never ran).

        SIGTERM: gunicorn finishes the requests in flight, then exits (0 when all
        went well). ``quick``: SIGINT, gunicorn's quick shutdown, and no waiting for
        the master once its workers are gone (it lingers a few seconds more), for
        callers with nothing in flight. Whatever is still running after ``timeout``
        seconds, the master and its workers, gets SIGKILL.
        """
        process = self.process
        if process is None:
            self._close_log()
            return None
        self.send_signal(signal.SIGINT if quick else signal.SIGTERM)
        deadline = time.perf_counter() + timeout
        while process.poll() is None and time.perf_counter() < deadline:
            if quick and not self.worker_pids():
                break
            time.sleep(0.05)
        if process.poll() is None:
            # The master is alive (not reaped), so its process group id is still its own.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
            process.wait(timeout=10)
        self._close_log()
        return process.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what a caller watches -----------------------------------------------------------
    def log(self) -> str:
        """The server's log so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = LOG_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def failure(self, message: str) -> str:
        """``message``, then where the log is and how it ends: for any failure about this
        server."""
        return f"{message}\n--- {self.log_path}, last lines:\n{self.log_tail()}"

    def worker_pids(self) -> set[int]:
        """gunicorn's live workers: the master's children, less the zombies (a killed
        worker stays one until the master reaps it)."""
        if self.process is None:
            return set()
        return {pid for pid in children(self.process.pid) if process_state(pid) not in "ZX"}

    def wait_for_workers(self, count: int, timeout: float = 30) -> set[int]:
        """Wait until exactly ``count`` workers run and each has logged its boot; their ids.

        A worker exists (forked) before it logs "Booting worker with pid: N", so counting
        processes alone can run ahead of :meth:`booted`."""
        deadline = time.perf_counter() + timeout
        while True:
            pids = self.worker_pids()
            if len(pids) == count and self.announced(pids):
                return pids
            if time.perf_counter() >= deadline:
                raise ServerError(self.failure(
                    f"expected {count} worker(s) within {timeout:g} s, found {sorted(pids)}"))
            time.sleep(0.05)

    def announced(self, pids) -> bool:
        """Whether each of these workers has logged "Booting worker with pid: N"."""
        log = self.log()
        return all(f"Booting worker with pid: {pid}" in log for pid in pids)

    def booted(self) -> int:
        """Workers gunicorn has started so far, the first ones included: one "Booting
        worker" line each, so a worker's death shows as one more."""
        return self.log().count("Booting worker")

    def invoke(self, body, content_type: str | None = "text/csv", accept: str | None = None,
               timeout: float = 60, **headers):
        """POST /invocations; the ``requests.Response``."""
        import requests  # a test tool: only callers that invoke need it

        sent = {"Content-Type": content_type} if content_type else {}
        if accept:
            sent["Accept"] = accept
        sent.update(headers)
        if isinstance(body, str):
            body = body.encode()
        return requests.post(self.url + "/invocations", data=body, headers=sent,
                             timeout=timeout)


def children(pid: int) -> set[int]:
    """Processes whose parent is ``pid``."""
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        pass
    found = set()  # kernels without the children file: every process's parent
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name is in parentheses and may hold spaces.
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def process_state(pid: int) -> str:
    """R, S, D, Z (zombie)... from /proc; X once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat[stat.rindex(")") + 2]
