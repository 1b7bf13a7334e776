"""``processing run SCRIPT [ARGS...]``: the user's own script as the processing job.

A ``ScriptProcessor``-style job definition passes the script and its arguments
as the container's arguments; the script runs with this image's Python (or as
the executable it is), its ``requirements.txt`` installed first, and its exit
code is the job's.
"""
from __future__ import annotations

from pathlib import Path

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.user_code.program import (child_environment, finish, resolve_program,
                                                   start)
from sklearn_byoc.common.user_code.requirements import install_into_interpreter, requirement_files

RUN_USAGE = """\
processing run SCRIPT [ARGS...]     run your own script as the processing job
processing SCRIPT.py [ARGS...]      the same, for a Python script

SCRIPT is a .py file (run with this image's Python), or any executable file.
A requirements.txt next to it is installed first.  ARGS are passed on as they
are; the script's exit code is the job's, and when it fails without writing
/opt/ml/output/message itself, its last error line is written there."""


def run_processing_script(argv: list[str], paths: Paths) -> None:
    """``processing run script.py [args...]``: run a user script as the processing job."""
    if not argv:
        raise UserError("processing run needs a script: processing run path/to/script.py "
                        "[args...]")
    if argv[0] in ("-h", "--help"):
        print(RUN_USAGE)
        return
    script, args = argv[0], list(argv[1:])
    path = Path(script)
    if not path.is_file():
        raise UserError(f"processing run: script {script!r} does not exist (the working "
                        f"folder is {Path.cwd()})")
    path = path.resolve()
    program = resolve_program(path.parent, path.name, "processing run: script")
    env = child_environment({}, path.parent)
    for requirements in requirement_files(path.parent, path.parent):
        install_into_interpreter(requirements, env)
    # The working folder stays the job's, so relative paths in ARGS mean what
    # the job definition meant.
    result = start(program, args, env)
    finish(f"user script {path.name}", result, [paths.message_file, paths.failure_file],
           stage="processing")
