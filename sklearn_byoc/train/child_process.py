"""Running user code as a child process the way a SageMaker job needs it.

- Output goes to the job log as it is written: stdout is inherited, stderr is
  forwarded chunk by chunk (so progress bars and partial lines still show)
  while its last lines are kept for the failure reason.
- A stop reaches the child: SageMaker stops a training job (StopTrainingJob,
  max runtime, Spot interruption) by sending SIGTERM to the container's main
  process only, and SIGKILL 120 s later.  The stage forwards SIGTERM/SIGINT to
  the child's process group and kills the group if it is still running after
  ``kill_after`` seconds (100 by default, inside the platform's 120).
- The child runs in its own session, so a terminal's Ctrl-C reaches it once,
  through the stage, and the final SIGKILL also reaches its own children.
"""
from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sklearn_byoc.common.errors import UserError

log = logging.getLogger("child")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEFAULT_KILL_AFTER = 100.0  # seconds; SageMaker sends SIGKILL 120 s after SIGTERM
TAIL_LINES = 50
_CHUNK = 64 * 1024


@dataclass
class ChildResult:
    returncode: int
    """The child's exit status; a child killed by signal N reports 128 + N, as a shell does."""
    stderr_tail: list[str] = field(default_factory=list)
    stopped_by: str | None = None
    """The stop signal forwarded to the child (e.g. ``"SIGTERM"``), if any."""
    killed: bool = False
    """True when the child ignored the stop and was killed after the grace period."""

    def last_error_line(self) -> str:
        for line in reversed(self.stderr_tail):
            if line.strip():
                return line.strip()
        return ""


class _StderrPump:
    """Copies the child's stderr to ours as it arrives and keeps its last lines."""

    def __init__(self, pipe, tail_lines: int):
        self.pipe = pipe
        self.tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._partial = b""
        self.thread = threading.Thread(target=self._run, name="stderr-pump", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        fd = self.pipe.fileno()
        out = getattr(sys.stderr, "buffer", None)
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except OSError:
                break
            if not chunk:
                break
            try:
                if out is not None:
                    out.write(chunk)
                    out.flush()
                else:  # pragma: no cover - stderr replaced by a text-only stream
                    sys.stderr.write(chunk.decode("utf-8", "replace"))
                    sys.stderr.flush()
            except (OSError, ValueError):
                pass  # our own stderr is gone; keep collecting the tail
            self._collect(chunk)
        if self._partial:
            self._keep(self._partial)
            self._partial = b""

    def _collect(self, chunk: bytes) -> None:
        data = self._partial + chunk
        # A carriage return redraws a progress line: only its last state matters.
        lines = data.replace(b"\r\n", b"\n").split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > _CHUNK:  # a line that never ends: keep its end only
            self._partial = self._partial[-_CHUNK:]
        for line in lines:
            self._keep(line)

    def _keep(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rsplit("\r", 1)[-1]
        self.tail.append(text)

    def finish(self, timeout: float) -> list[str]:
        # A grandchild that outlives the child may hold the pipe open: do not
        # wait for it forever.
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("the program's children still hold its stderr open; not waiting "
                        "for them")
        return list(self.tail)


def exit_status(returncode: int) -> int:
    """Popen reports death by signal N as -N; a job's exit code is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def run_child(argv: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | str | None = None, kill_after: float = DEFAULT_KILL_AFTER,
              tail_lines: int = TAIL_LINES) -> ChildResult:
    """Run ``argv`` to completion, forwarding stop signals; never raises on a stop.

    Must be called from the main thread (signal handlers live there).
    """
    state: dict = {"proc": None, "stopped_by": None, "deadline": None}

    def forward(signum, _frame):
        name = signal.Signals(signum).name
        if state["stopped_by"] is None:
            state["stopped_by"] = name
            state["deadline"] = time.monotonic() + kill_after
            log.warning("%s received: passing it to the program (it is killed if still "
                        "running in %.0f s)", name, kill_after)
        proc = state["proc"]
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv], env=env, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=None, stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:  # not executable, wrong format, missing interpreter
            raise UserError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
        state["proc"] = proc
        pump = _StderrPump(proc.stderr, tail_lines)
        pump.start()
        if state["stopped_by"] is not None:  # the stop arrived while the child started
            _signal_group(proc, signal.Signals[state["stopped_by"]])
        killed = False
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            deadline = state["deadline"]
            if deadline is not None and not killed and time.monotonic() >= deadline:
                log.error("the program ignored %s for %.0f s: killing it",
                          state["stopped_by"], kill_after)
                _signal_group(proc, signal.SIGKILL)
                killed = True
        tail = pump.finish(timeout=5.0)
        proc.stderr.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return ChildResult(exit_status(proc.returncode), tail, state["stopped_by"], killed)


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - the group changed owner
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass
