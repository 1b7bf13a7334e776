"""A stage's work in a worker process, under a small supervisor that survives it.

When a job runs out of memory the kernel's out-of-memory killer sends SIGKILL
to the process using the most, which no Python code can catch: a stage doing
its work in-process ends without a reason.  So the stage process (what
SageMaker starts and signals) imports nothing heavy, starts the work in a
worker process (pandas, scikit-learn), forwards SageMaker's stop to it, and
when the worker dies without a reason of its own writes one, telling:

- a stop (SIGTERM, which SageMaker sends first; SIGKILL follows 120 s later):
  "stopped by SIGTERM";
- the out-of-memory killer: SIGKILL with no stop first, and the cgroup's
  OOM-kill count went up (``memory.events`` / ``memory.oom_control``): "ran
  out of memory" with the worker's peak memory (``wait4``) and the limit;
- any other signal or exit: what it was, and the worker's last error line.

Where the runtime kills the whole container for memory (every process of the
cgroup at once), nothing is left to write a reason.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from sklearn_byoc.common.child_process import ChildResult, run_child
from sklearn_byoc.common.disk import size_text
from sklearn_byoc.common.failure import (EXIT_STOPPED, has_reason, memory_limit_text, one_line,
                                         out_of_memory_reason, run_stage, write_reason)

log = logging.getLogger("stage")

PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
# The worker finds this package where the stage found it, and nothing from the
# working folder shadows a module of it ("-c" puts the working folder first on
# sys.path; this replaces it).
BOOTSTRAP = ("import sys; sys.path[0] = {parent!r}; "
             "from sklearn_byoc.common.supervisor import worker_main; worker_main(sys.argv[1])")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# The interpreter running this process, by the kernel's link to it: starting it
# needs no search permission on the folders of sys.executable's path (a stage run
# as another user than the one who made the virtual environment).  The worker
# still gets sys.executable as its argv[0], from which Python finds the venv.
SELF = "/proc/self/exe"


def run_worker(stage: str, target: str, args: list[str], failure_files: list[Path], *,
               what: str, level: int, memory_advice: str | None = None) -> None:
    """Run ``target`` ("module:function", called with ``args``) in a worker; return when
    it succeeds, else exit the stage with its code after making sure a reason is written."""
    payload = {"stage": stage, "target": target, "args": list(args), "level": level,
               "failure_files": [str(p) for p in failure_files], "what": what,
               "memory_advice": memory_advice, "supervisor": os.getpid()}
    argv = [sys.executable, "-c", BOOTSTRAP.format(parent=PACKAGE_PARENT), json.dumps(payload)]
    log.debug("starting %s in a worker process", what)
    result = run_child(argv, label=what,
                       executable=SELF if os.path.exists(SELF) else None)
    if result.returncode == 0:
        if result.peak_bytes:
            # What sizing the instance type needs to know.
            limit = memory_limit_text()
            log.info("%s used at most %s of memory%s", what, size_text(result.peak_bytes),
                     f" (of {limit})" if limit else "")
        return
    if not has_reason(failure_files):
        reason = worker_reason(what, result, memory_advice)
        log.error("%s failed: %s", stage, one_line(reason))
        write_reason(reason, failure_files)
    raise SystemExit(result.returncode)


def worker_reason(what: str, result: ChildResult, memory_advice: str | None = None) -> str:
    """Why the worker ended, when it could not say so itself."""
    code = result.returncode
    last = result.last_error_line()
    said = f"; its last error line: {last[:400]}" if last else ""
    if result.stopped_by:
        if result.killed:
            return f"stopped by {result.stopped_by}: {what} ignored it and was killed"
        if result.signal_number == signal.SIGKILL:
            return f"stopped by {result.stopped_by}: {what} was killed (SIGKILL) before it stopped"
        return f"stopped by {result.stopped_by}: {what} ended with code {code}{said}"
    oom = result.oom_killed
    if oom:
        return out_of_memory_reason(what, "was killed by the kernel's out-of-memory killer",
                                    result.peak_bytes, memory_advice)
    if oom is None:
        return out_of_memory_reason(
            what, "was killed by SIGKILL with no stop request, which is what the kernel's "
                  "out-of-memory killer does (this host does not count its kills)",
            result.peak_bytes, memory_advice)
    if result.signal_number == signal.SIGKILL:
        return (f"{what} was killed by SIGKILL from outside the job (exit code {code}): "
                "not by a stop request, and not by the kernel's out-of-memory killer (the "
                "container's count of its kills did not change)")
    if result.signal_number is not None:
        name = signal.Signals(result.signal_number).name
        return (f"internal error: {what} died of {name} (exit code {code}){said}; the job "
                "log has its output")
    return (f"internal error: {what} exited with code {code} without a reason{said}; the "
            "job log has its output")


def worker_main(raw: str) -> None:
    """The worker process: run the target as a stage whose reason files the supervisor
    owns."""
    payload = json.loads(raw)
    _die_with(payload["supervisor"])
    module, _, function = payload["target"].partition(":")
    args = payload["args"]

    def main() -> None:
        getattr(importlib.import_module(module), function)(args)

    code = 0
    try:
        run_stage(payload["stage"], main, [Path(p) for p in payload["failure_files"]],
                  reserve=False, level=payload["level"], what=payload["what"],
                  memory_advice=payload["memory_advice"])
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("text"): printed, as the interpreter does
        print(code, file=sys.stderr)
        code = 1
    if not _nothing_left_running():
        raise SystemExit(code)
    # The work is done and its files closed: the interpreter's teardown would free every
    # object one by one (0.2 s after a 100,000-row fit), with the supervisor, and so the
    # job, waiting on it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _nothing_left_running() -> bool:
    """Whether a normal exit would wait for nothing: no other thread that is not a daemon,
    and no child process (joblib's process pool, which a normal exit shuts down: left
    running, its workers would hold the stage's output open)."""
    import threading

    if any(t is not threading.main_thread() and not t.daemon and t.is_alive()
           for t in threading.enumerate()):
        return False
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def _die_with(supervisor: int) -> None:
    """SIGKILL this worker when the supervisor dies, so that no work goes on unwatched
    (outside a container nothing else would stop it)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != supervisor:  # it died before the line above
        os._exit(EXIT_STOPPED)

