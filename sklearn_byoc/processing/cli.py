"""``processing``: the SageMaker processing job entry point.

A processing job passes no command, so Pipelines name this shim as the
``Processor`` entrypoint and append the options as arguments::

    processing [prepare] [--target churn ...]   clean and split raw CSV (default)
    processing evaluate [--model-dir ...]       score a model on the test split and
                                                write evaluation.json
    processing run SCRIPT [ARGS...]             run your own script (.py or executable;
                                                "processing SCRIPT.py ..." works too)
    processing --help                           this text; MODE --help: its options

On failure the reason goes to /opt/ml/output/message (the job's ExitMessage)
and /opt/ml/output/failure, and the exit code is non-zero.
"""
import sys

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.failure import run_stage

MODES = ("prepare", "evaluate", "run")


def main(argv: list[str]) -> None:
    paths = Paths.from_env()
    mode, args = (argv[0], argv[1:]) if argv and not argv[0].startswith("-") else ("prepare", argv)
    if mode == "prepare":
        from sklearn_byoc.processing.prepare import prepare

        prepare(args, paths)
    elif mode == "evaluate":
        from sklearn_byoc.processing.evaluate import evaluate

        evaluate(args, paths)
    elif mode == "run" or mode.endswith(".py"):
        # The user's own script; a bare "script.py" is what a ScriptProcessor-style
        # job definition passes.
        from sklearn_byoc.train.script_mode import run_processing_script

        run_processing_script(args if mode == "run" else [mode, *args], paths)
    else:
        raise UserError(f"unknown processing mode {mode!r}; use one of {', '.join(MODES)}")


def run(argv: list[str]) -> None:
    """The ``processing`` command; exits with the stage's status."""
    if argv in (["-h"], ["--help"], ["help"]):
        print(__doc__.strip())
        sys.exit(0)
    paths = Paths.from_env()
    run_stage("processing", lambda: main(argv), [paths.message_file, paths.failure_file])
