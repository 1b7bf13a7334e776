"""How a stage ends: exit code, failure reason files and the log.

SageMaker shows the first 1024 characters of ``/opt/ml/output/failure`` as a
training job's FailureReason and the first 1 KB of ``/opt/ml/output/message``
as a processing job's ExitMessage.  Exit code 0 means Completed, anything
else Failed.  So every stage runs inside :func:`run_stage`, which writes a
one-line reason there first, keeps the full traceback for the log, and exits
non-zero.
"""
from __future__ import annotations

import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterable

from sklearn_byoc.common.errors import StageStopped, UserError

log = logging.getLogger("stage")

EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 2
EXIT_STOPPED = 143  # 128 + SIGTERM, what a shell reports for a stopped job


def configure_logging(stage: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {stage} %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


def write_reason(reason: str, files: Iterable[Path]) -> None:
    line = one_line(reason) + "\n"
    for path in files:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(line, encoding="utf-8")
        except OSError as exc:  # the log still has the reason
            log.error("could not write the failure reason to %s: %s", path, exc)


def clear_reason(files: Iterable[Path]) -> None:
    """A rerun on the same tree must not inherit an earlier run's failure."""
    for path in files:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove the stale failure file %s: %s", path, exc)


def _raise_stopped(signum, _frame):
    raise StageStopped(f"stopped by {signal.Signals(signum).name}")


def reason_for(exc: BaseException) -> tuple[str, int]:
    """The one-line failure reason and exit code for an exception."""
    if isinstance(exc, StageStopped):
        return str(exc), EXIT_STOPPED
    if isinstance(exc, UserError):
        return str(exc), EXIT_USER_ERROR
    if isinstance(exc, MemoryError):
        return ("ran out of memory: use an instance type with more memory or "
                "reduce the data or model size"), EXIT_INTERNAL_ERROR
    detail = str(exc) or type(exc).__name__
    return (f"internal error ({type(exc).__name__}: {detail}); the job log has the "
            "full traceback"), EXIT_INTERNAL_ERROR


def run_stage(stage: str, main: Callable[[], None], failure_files: list[Path]) -> None:
    """Run ``main`` as a stage and exit the process with SageMaker's conventions."""
    configure_logging(stage)
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    clear_reason(failure_files)
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure must be reported
        reason, code = reason_for(exc)
        # The traceback goes to the log first, the reason last, so the final
        # log line and the failure file say the same thing.
        log.error("%s", "".join(traceback.format_exception(exc)).rstrip())
        log.error("%s failed: %s", stage, one_line(reason))
        write_reason(reason, failure_files)
        sys.exit(code)
    sys.exit(0)
