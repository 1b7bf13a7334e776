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
and /opt/ml/output/failure, and the exit code is non-zero.  The environment
variable SAGEMAKER_CONTAINER_LOG_LEVEL (Processor(env=...)) sets the log
level: 10 (DEBUG), 20 (INFO, the default), 30 (WARNING), or the level's name.
"""
import os
import sys

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.failure import run_stage
from sklearn_byoc.common.logs import LOG_LEVEL_ENV, log_level, set_level

MODES = ("prepare", "evaluate", "run")
HELP_ARGS = ("-h", "--help")
MEMORY_ADVICE = {
    "prepare": ("use an instance type with more memory, or spread the input over more "
                "instances (ProcessingInput with ShardedByS3Key and a larger instance_count)"),
    "evaluate": "use an instance type with more memory, or score fewer test rows",
}


def split_mode(argv: list[str]) -> tuple[str, list[str]]:
    if argv and not argv[0].startswith("-"):
        return argv[0], argv[1:]
    return "prepare", argv


def main(argv: list[str]) -> None:
    paths = Paths.from_env()
    level = log_level(os.environ.get(LOG_LEVEL_ENV), f"the environment variable {LOG_LEVEL_ENV}")
    set_level(level)
    mode, args = split_mode(argv)
    if mode in ("prepare", "evaluate"):
        from sklearn_byoc.common.supervisor import run_worker

        run_worker("processing", f"sklearn_byoc.processing.cli:{mode}_work", args,
                   [paths.message_file, paths.failure_file], what=f"processing {mode}",
                   level=level, memory_advice=MEMORY_ADVICE[mode])
    elif mode == "run" or mode.endswith(".py"):
        # The user's own script; a bare "script.py" is what a ScriptProcessor-style
        # job definition passes.
        from sklearn_byoc.processing.run_script import run_processing_script

        run_processing_script(args if mode == "run" else [mode, *args], paths)
    else:
        raise UserError(f"unknown processing mode {mode!r}; use one of {', '.join(MODES)}")


def prepare_work(args: list[str]) -> None:
    """``processing prepare``, in the worker process."""
    from sklearn_byoc.processing.prepare import prepare

    prepare(args, Paths.from_env())


def evaluate_work(args: list[str]) -> None:
    """``processing evaluate``, in the worker process."""
    from sklearn_byoc.processing.evaluate import evaluate

    evaluate(args, Paths.from_env())


def print_help(argv: list[str]) -> bool:
    """Print the help ``argv`` asks for, if it asks; nothing under /opt/ml is touched."""
    if argv in (["-h"], ["--help"], ["help"]):
        print(__doc__.strip())
        return True
    mode, args = split_mode(argv)
    if mode in ("prepare", "evaluate") and any(a in HELP_ARGS for a in args):
        if mode == "prepare":
            from sklearn_byoc.processing.prepare import build_parser
        else:
            from sklearn_byoc.processing.evaluate import build_parser
        build_parser(Paths.from_env()).print_help()
        return True
    if mode == "run" and args[:1] in (["-h"], ["--help"]):
        from sklearn_byoc.processing.run_script import RUN_USAGE

        print(RUN_USAGE)
        return True
    return False


def run(argv: list[str]) -> None:
    """The ``processing`` command; exits with the stage's status."""
    if print_help(argv):
        sys.exit(0)
    paths = Paths.from_env()
    run_stage("processing", lambda: main(argv), [paths.message_file, paths.failure_file])
