"""How a stage ends: exit code, failure reason files and the log.

SageMaker shows the first 1024 characters of ``/opt/ml/output/failure`` as a
training job's FailureReason and the first 1 KB of ``/opt/ml/output/message``
as a processing job's ExitMessage.  Exit code 0 means Completed, anything
else Failed.  So every stage runs inside :func:`run_stage`, which writes a
one-line reason there, and exits non-zero.

The log gets the same line.  A traceback is logged only for an internal
error (a bug of this image); for an error the user can fix (bad data, a bad
setting, a full disk, too little memory) it is logged at DEBUG only.
"""
from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterable

from sklearn_byoc.common.cgroups import Cgroup, machine_memory
from sklearn_byoc.common.disk import NoSpaceLeft, from_os_error, is_disk_full, size_text
from sklearn_byoc.common.errors import StageStopped, UserError
from sklearn_byoc.common.logs import DEFAULT_LEVEL, configure_logging

__all__ = ["configure_logging", "run_stage", "reason_for", "write_reason", "one_line"]

log = logging.getLogger("stage")

EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 2
EXIT_STOPPED = 143  # 128 + SIGTERM, what a shell reports for a stopped job
# Room kept in each reason file from the start, so the reason still fits when
# the job has filled the volume: SageMaker reads 1024 characters, at most 4
# bytes each in UTF-8.
RESERVED_BYTES = 4096
FALLOC_FL_KEEP_SIZE = 0x01  # linux/falloc.h: allocate blocks, leave the size at 0

OUT_OF_MEMORY = ("ran out of memory (MemoryError): use an instance type with more memory, or "
                 "give the job less data at once")
DEFAULT_MEMORY_ADVICE = ("use an instance type with more memory, or give the job less data "
                         "at once")


def one_line(text: str) -> str:
    return " ".join(text.split())


# -- the reason files ------------------------------------------------------------------------
def reserve_reason(files: Iterable[Path]) -> None:
    """Start a run: drop an earlier run's reason and hold room for this one's.

    Each file is created empty with its blocks allocated (``fallocate`` with
    ``FALLOC_FL_KEEP_SIZE``), so writing the reason needs no new space.  An
    empty file is no reason: SageMaker reads nothing from it, and
    :func:`release_reason` removes it after a success.
    """
    for path in files:
        try:
            path.unlink(missing_ok=True)  # a rerun on the same tree must not inherit it
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            log.warning("could not prepare %s for a failure reason: %s", path, exc)
            continue
        try:
            if not _preallocate(fd, RESERVED_BYTES):
                log.debug("%s: the file system keeps no room in advance", path)
        finally:
            os.close(fd)


def _preallocate(fd: int, size: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fallocate = libc.fallocate
    except (OSError, AttributeError):  # pragma: no cover - no C library to call
        return False
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fallocate.restype = ctypes.c_int
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, size) == 0


def write_reason(reason: str, files: Iterable[Path]) -> None:
    """Write the one-line reason into each file, in place: truncating first would give
    the reserved room back before the reason is in it."""
    data = (one_line(reason) + "\n").encode("utf-8")
    for path in files:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
        except OSError as exc:  # the log still has the reason
            log.error("could not write the failure reason to %s: %s", path, exc)


def has_reason(files: Iterable[Path]) -> bool:
    """Whether any file already holds a reason (the reserved files start empty)."""
    for path in files:
        try:
            if path.stat().st_size > 0:
                return True
        except OSError:
            pass
    return False


def release_reason(files: Iterable[Path]) -> None:
    """After a success: remove the reserved files nothing was written to."""
    for path in files:
        try:
            if path.stat().st_size == 0:
                path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove the empty failure file %s: %s", path, exc)


# -- memory ----------------------------------------------------------------------------------
def memory_limit_text() -> str | None:
    """The memory limit that binds this process, as a phrase ("the container's 2.0 GiB
    limit"), or None when nothing can be read."""
    for name, what in ((resource.RLIMIT_AS, "address-space limit (RLIMIT_AS)"),
                       (resource.RLIMIT_DATA, "data-size limit (RLIMIT_DATA)")):
        soft, _ = resource.getrlimit(name)
        if soft != resource.RLIM_INFINITY:
            return f"its {size_text(soft)} {what}"
    container = Cgroup.find().memory_limit()
    machine = machine_memory()
    if container is not None and (machine is None or container < machine):
        return f"the container's {size_text(container)} limit"
    if machine is not None:
        return f"the {size_text(machine)} of this machine"
    return None


def out_of_memory_reason(what: str, how: str, peak: int | None,
                         advice: str | None = None) -> str:
    """``ran out of memory: <what> <how> at a peak of <peak> of <limit>; <advice>``."""
    figures = ""
    if peak:
        figures = f" at a peak of {size_text(peak)}"
        limit = memory_limit_text()
        if limit:
            figures += f" of {limit}"
    return f"ran out of memory: {what} {how}{figures}; {advice or DEFAULT_MEMORY_ADVICE}"


def own_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


# -- turning an exception into a reason ------------------------------------------------------
def _raise_stopped(signum, _frame):
    raise StageStopped(f"stopped by {signal.Signals(signum).name}")


def reason_for(exc: BaseException, stage: str | None = None, what: str | None = None,
               memory_advice: str | None = None) -> tuple[str, int]:
    """The one-line failure reason and exit code for an exception."""
    if isinstance(exc, StageStopped):
        return str(exc), EXIT_STOPPED
    if isinstance(exc, NoSpaceLeft):
        return exc.describe(stage), EXIT_USER_ERROR
    if isinstance(exc, UserError):
        return str(exc), EXIT_USER_ERROR
    if isinstance(exc, MemoryError):
        return out_of_memory_reason(what or stage or "the stage",
                                    "could not allocate more memory (MemoryError)",
                                    own_peak(), memory_advice), EXIT_INTERNAL_ERROR
    if is_disk_full(exc):
        return from_os_error(exc).describe(stage), EXIT_USER_ERROR
    detail = str(exc) or type(exc).__name__
    return (f"internal error ({type(exc).__name__}: {detail}); the job log has the "
            "full traceback"), EXIT_INTERNAL_ERROR


def is_internal(exc: BaseException) -> bool:
    """A bug of this image rather than something the user can fix."""
    return not isinstance(exc, (StageStopped, UserError, MemoryError)) and not is_disk_full(exc)


def run_stage(stage: str, main: Callable[[], None], failure_files: list[Path], *,
              reserve: bool = True, level: int = DEFAULT_LEVEL, what: str | None = None,
              memory_advice: str | None = None) -> None:
    """Run ``main`` as a stage and exit the process with SageMaker's conventions.

    ``reserve``: this process owns the reason files for the run (clears an earlier
    reason, keeps room, removes the empty files after a success); a worker that
    a supervisor started leaves that to it.
    """
    configure_logging(stage, level)
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    if reserve:
        reserve_reason(failure_files)
    try:
        main()
    except SystemExit as exc:
        if reserve and exc.code in (0, None):
            release_reason(failure_files)
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure must be reported
        if isinstance(exc, MemoryError):
            # The frames' variables hold what filled the memory: free it before
            # anything else needs some (the traceback keeps its lines).
            traceback.clear_frames(exc.__traceback__)
        try:
            trace = "".join(traceback.format_exception(exc)).rstrip()
            reason, code = reason_for(exc, stage, what, memory_advice)
        except MemoryError:  # what is still held leaves no room to say more
            trace, reason, code = "", OUT_OF_MEMORY, EXIT_INTERNAL_ERROR
        # The reason is the log's last line, so the end of the log and the failure
        # file say the same thing.
        log.log(logging.ERROR if is_internal(exc) else logging.DEBUG, "%s", trace)
        log.error("%s failed: %s", stage, one_line(reason))
        write_reason(reason, failure_files)
        sys.exit(code)
    if reserve:
        release_reason(failure_files)
    sys.exit(0)
