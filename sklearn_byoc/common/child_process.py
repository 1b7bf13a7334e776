"""Running a child process the way a SageMaker job needs it: the user's program, or
the worker that does a built-in stage's work.

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
- How it ended is kept for the failure reason: its peak memory (``wait4``'s
  ``ru_maxrss``), the signal that killed it, and whether the kernel's
  out-of-memory killer killed a process of the container meanwhile (the
  cgroup's OOM-kill count, see ``cgroups.py``).
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

from sklearn_byoc.common.cgroups import Cgroup
from sklearn_byoc.common.errors import UserError

log = logging.getLogger("child")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEFAULT_KILL_AFTER = 100.0  # seconds; SageMaker sends SIGKILL 120 s after SIGTERM
TAIL_LINES = 50
_CHUNK = 64 * 1024
_POLL = 0.05  # seconds between checks for the child's end and the stop deadline
# The kernel's out-of-memory killer kills the process with the highest
# oom_score, which oom_score_adj (-1000..1000) shifts; raising a child's needs no
# privilege.  The child that does the work is then the one killed, and the
# stage that started it lives on to write the reason.
CHILD_OOM_SCORE_ADJ = 500


@dataclass
class ChildResult:
    returncode: int
    """The child's exit status; a child killed by signal N reports 128 + N, as a shell does."""
    stderr_tail: list[str] = field(default_factory=list)
    stopped_by: str | None = None
    """The stop signal forwarded to the child (e.g. ``"SIGTERM"``), if any."""
    killed: bool = False
    """True when the child ignored the stop and was killed after the grace period."""
    signal_number: int | None = None
    """The signal that ended the child, if one did."""
    peak_bytes: int | None = None
    """The child's peak resident memory (the largest of it and its waited-for children)."""
    oom_kills: int | None = None
    """Processes of this container the out-of-memory killer killed while the child ran;
    None where the kernel does not say."""

    @property
    def oom_killed(self) -> bool | None:
        """Whether the out-of-memory killer ended the child: True, False, or None when
        it was killed without a stop request but the kernel's count is unreadable.

        SageMaker stops a job with SIGTERM first (SIGKILL follows 120 s later), so a
        SIGKILL without it came from elsewhere; the cgroup's OOM-kill count tells
        whether that was the kernel's out-of-memory killer.
        """
        if self.signal_number != signal.SIGKILL or self.stopped_by:
            return False
        if self.oom_kills is None:
            return None
        return self.oom_kills > 0

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
              tail_lines: int = TAIL_LINES, label: str = "the program",
              executable: str | None = None) -> ChildResult:
    """Run ``argv`` to completion, forwarding stop signals; never raises on a stop.

    ``executable`` is the file to run when it is not ``argv[0]`` (which the child
    still sees as its name).

    Must be called from the main thread (signal handlers live there).
    """
    state: dict = {"pid": None, "done": False, "stopped_by": None, "deadline": None}

    def forward(signum, _frame):
        name = signal.Signals(signum).name
        if state["stopped_by"] is None:
            state["stopped_by"] = name
            state["deadline"] = time.monotonic() + kill_after
            log.warning("%s received: passing it to %s (killed if still running in %.0f s)",
                        name, label, kill_after)
        if state["pid"] is not None and not state["done"]:
            _signal_group(state["pid"], signum)

    cgroup = Cgroup.find()
    oom_before = cgroup.oom_kills()
    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        try:
            proc = subprocess.Popen(
                [str(a) for a in argv], executable=executable, env=env, cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=None, stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:  # not executable, wrong format, missing interpreter
            raise UserError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
        state["pid"] = proc.pid
        _raise_oom_score(proc.pid)
        pump = _StderrPump(proc.stderr, tail_lines)
        pump.start()
        if state["stopped_by"] is not None:  # the stop arrived while the child started
            _signal_group(proc.pid, signal.Signals[state["stopped_by"]])
        killed = False
        while True:
            ended = _reap(proc)
            if ended is not None:
                status, peak = ended
                break
            deadline = state["deadline"]
            if deadline is not None and not killed and time.monotonic() >= deadline:
                log.error("%s ignored %s for %.0f s: killing it", label, state["stopped_by"],
                          kill_after)
                _signal_group(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(_POLL)
        state["done"] = True
        tail = pump.finish(timeout=5.0)
        proc.stderr.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    oom_after = cgroup.oom_kills()
    oom_kills = oom_after - oom_before if None not in (oom_before, oom_after) else None
    return ChildResult(exit_status(status), tail, state["stopped_by"], killed,
                       signal_number=-status if status < 0 else None, peak_bytes=peak,
                       oom_kills=oom_kills)


def _reap(proc: subprocess.Popen) -> tuple[int, int | None] | None:
    """(Popen-style return code, peak memory in bytes) once the child has ended, else None.

    ``wait4`` rather than ``Popen.wait``: only it returns the child's resource usage.
    """
    try:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere: the code is known, the usage is not
        return proc.wait(), None
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024  # Linux counts ru_maxrss in KiB


def _raise_oom_score(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/oom_score_adj").write_text(str(CHILD_OOM_SCORE_ADJ))
    except OSError as exc:  # no /proc, or the child is already gone
        log.debug("could not raise the oom_score_adj of process %d: %s", pid, exc)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:  # pragma: no cover - the group changed owner
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
