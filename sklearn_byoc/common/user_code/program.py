"""Running a user's program as a child process whose outcome becomes the stage's.

The program runs the way sagemaker-training-toolkit runs an entry point: a
``.py`` file with this image's Python, an executable file itself, a file with a
``#!`` line through the interpreter it names, any other file through
``/bin/sh``, and a dotted name as ``python -m``.  Its exit code is the stage's;
when it fails without writing a failure reason itself, its last error line is
written for it.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from sklearn_byoc.common.child_process import ChildResult, run_child
from sklearn_byoc.common.disk import VOLUME_SETTINGS
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.failure import has_reason, out_of_memory_reason, write_reason
from sklearn_byoc.common.user_code.locate import describe_folder

log = logging.getLogger("user_code")

MAX_REASON_LINE = 800  # leaves room for the exit code inside SageMaker's 1024 characters
MEMORY_ADVICE = "use an instance type with more memory, or make the program use less"

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass
class Program:
    name: str
    argv_prefix: list[str]
    """The command before the arguments: ``[python, script]``, ``[python, -m, mod]``
    or ``[executable]``."""
    folder: Path
    """Where the program lives (its ``requirements.txt`` is looked for there too)."""


def resolve_program(code_dir: Path, name: str, what: str) -> Program:
    """How to start ``name`` found in ``code_dir``: a script, an executable or a module.
    ``what`` names the setting that gave ``name`` (for messages)."""
    if not name:
        raise UserError(f"{what} is empty; it must name the script to run "
                        "(the estimator's entry_point)")
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        candidate = path
    else:
        candidate = code_dir / path
    if candidate.is_file():
        if candidate.suffix == ".py":
            return Program(name, [sys.executable, str(candidate)], candidate.parent)
        head = _first_line(candidate)
        if os.access(candidate, os.X_OK) and (head.startswith(b"#!") or head[:4] == b"\x7fELF"):
            return Program(name, [str(candidate)], candidate.parent)
        if head.startswith(b"#!"):
            # Archives made on Windows or by hand lose the executable bit: run
            # the interpreter its "#!" line names, as the kernel would (the
            # rest of that line is one argument).
            interpreter, _, argument = head[2:].decode("utf-8", "replace").strip().partition(" ")
            if interpreter:
                return Program(name, [interpreter, *([argument.strip()] if argument.strip()
                                                     else []), str(candidate)],
                               candidate.parent)
        # No "#!" line: the toolkit starts such an entry point through /bin/sh,
        # which runs it as a shell script.
        return Program(name, ["/bin/sh", str(candidate)], candidate.parent)
    if name.endswith(".py") or "/" in name or candidate.is_dir():
        raise UserError(_not_found(code_dir, name, what))
    if _MODULE_NAME.match(name):
        # ``python -m package.module``: the code folder is on PYTHONPATH, and a
        # module installed by requirements.txt works as well.
        return Program(name, [sys.executable, "-m", name], code_dir)
    raise UserError(_not_found(code_dir, name, what))


def _first_line(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.readline(256).rstrip(b"\r\n")
    except OSError:
        return b""


def _not_found(code_dir: Path, name: str, what: str) -> str:
    return (f"{what} {name!r} is not in the code folder {code_dir} (it "
            f"{describe_folder(code_dir)}); entry_point must be a path inside source_dir")


def child_environment(extra: dict[str, str], code_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    if code_dir is not None:
        # The user's modules import each other from the code folder, first.
        existing = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = str(code_dir) + (os.pathsep + existing if existing else "")
    # Lines reach the job log (and SageMaker's metric regexes) as they are
    # printed, not when a buffer fills.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# -- failure reporting -----------------------------------------------------------
def failure_reason(label: str, result: ChildResult, stage: str = "train") -> str:
    """One line for FailureReason: the program's own last error line first, then how it
    ended.  The line is cut so the exit code survives the 1024-character limit."""
    last = result.last_error_line()
    if len(last) > MAX_REASON_LINE:
        last = last[:MAX_REASON_LINE] + "..."
    ended = f"{label} exited with code {result.returncode}"
    if result.killed:
        ended = f"{label} ignored {result.stopped_by} and was killed"
    if result.stopped_by:
        return f"stopped by {result.stopped_by}: {ended}" + (
            f" (its last error line: {last})" if last else "")
    oom = result.oom_killed
    if oom or oom is None:
        how = ("was killed by the kernel's out-of-memory killer" if oom else
               "was killed by SIGKILL with no stop request, which is what the kernel's "
               "out-of-memory killer does")
        return out_of_memory_reason(label, f"{how} (exited with code {result.returncode})",
                                    result.peak_bytes, MEMORY_ADVICE)
    if last.startswith("MemoryError"):
        return out_of_memory_reason(label, f"raised {last} ({ended})", result.peak_bytes,
                                    MEMORY_ADVICE)
    reason = f"{last} ({ended})" if last else f"{ended} and printed nothing on stderr"
    if "No space left on device" in last or "Disk quota exceeded" in last:
        reason += f": the job's storage volume is full; {VOLUME_SETTINGS[stage]}"
    elif result.oom_kills:
        reason += (f"; meanwhile the kernel's out-of-memory killer killed {result.oom_kills} "
                   f"process(es) of the job: {MEMORY_ADVICE}")
    return reason


def finish(label: str, result: ChildResult, failure_files: Iterable[Path],
           stage: str = "train") -> None:
    """Make the program's outcome the stage's: exit with its code, explain a failure."""
    failure_files = list(failure_files)
    code = result.returncode
    if result.stopped_by and code == 0:
        code = 143  # 128 + SIGTERM: a stopped job never reads as Completed
    if code == 0:
        log.info("%s finished", label)
        return
    reason = failure_reason(label, result, stage)
    log.error("%s", reason)
    if has_reason(failure_files):
        log.info("%s wrote its own failure reason; keeping it", label)
    else:
        write_reason(reason, failure_files)
    raise SystemExit(code)


def start(program: Program, args: list[str], env: dict[str, str],
          cwd: Path | None = None) -> ChildResult:
    """Run the program to its end (``cwd`` None: the stage's own working folder)."""
    argv = [*program.argv_prefix, *args]
    log.info("running user script %s%s: %s", program.name, f" in {cwd}" if cwd else "",
             shlex.join(argv))
    return run_child(argv, env=env, cwd=cwd)
