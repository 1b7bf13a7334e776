"""``train``: the SageMaker training job entry point.

This process reads the job's configuration and supervises the work (see
``common/supervisor.py``): the built-in trainer runs in a worker process, a
user's program (script mode) in a child process, so that a job killed for
memory still gets a failure reason.
"""
import json
import os
import sys

from sklearn_byoc.common.contract import Paths, ResourceConfig, read_input_data_config
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.failure import run_stage
from sklearn_byoc.common.logs import LOG_LEVEL_ENV, LOG_LEVEL_HYPERPARAMETER, log_level, set_level
from sklearn_byoc.train import hyperparameters

HELP_ARGS = ("-h", "--help", "help")
USAGE = """\
train: a SageMaker training job (SageMaker starts the image with the command "train").

It takes no arguments; it reads the job from /opt/ml (SAGEMAKER_BASE_DIR moves the tree):
  input/config/hyperparameters.json  the hyperparameters below
  input/config/inputdataconfig.json  the channels: CSV or Parquet files in
                                     input/data/<channel>/, the channel train or training
                                     (or the only one), and validation (optional)
and writes the model to model/, the metrics to output/data/metrics.json and, when the
job fails, the reason to output/failure (the job's FailureReason).

The trainer's hyperparameters:
{keys}
Every other hyperparameter is a parameter of the chosen estimator (n_estimators,
max_depth, ...), typed from what the estimator declares it takes. Keys SageMaker adds
(sagemaker_*, _*) are ignored.

With the hyperparameter sagemaker_program (a framework estimator's entry_point) it runs
that program instead, as sagemaker-training-toolkit does.

Log level: the hyperparameter sagemaker_container_log_level, else the environment
variable SAGEMAKER_CONTAINER_LOG_LEVEL: 10 (DEBUG), 20 (INFO, the default), 30
(WARNING), 40 (ERROR), or the level's name."""


def usage() -> str:
    return USAGE.format(keys="\n".join(hyperparameters.help_lines()))


WHAT = "the training"
MEMORY_ADVICE = ("use an instance type with more memory, train on fewer rows, or pick a "
                 "model that needs less (model=linear, or fewer and shallower trees)")


def training_log_level(raw_hyperparameters: dict) -> int:
    """The hyperparameter framework estimators send, else the environment variable, as
    sagemaker-training-toolkit reads them."""
    if LOG_LEVEL_HYPERPARAMETER in raw_hyperparameters:
        return log_level(hyperparameters.text_of(raw_hyperparameters[LOG_LEVEL_HYPERPARAMETER]),
                         f"the hyperparameter {LOG_LEVEL_HYPERPARAMETER}")
    return log_level(os.environ.get(LOG_LEVEL_ENV),
                     f"the environment variable {LOG_LEVEL_ENV}")


def main(args: list[str]) -> None:
    if args:
        raise UserError(f"train takes no arguments (got {' '.join(args)}); it reads its "
                        "settings from hyperparameters.json (train --help says more)")
    paths = Paths.from_env()
    raw = hyperparameters.read_file(paths.hyperparameters_file)
    level = training_log_level(raw)
    set_level(level)
    input_config = read_input_data_config(paths.inputdataconfig_file)

    # A framework estimator (entry_point=...) names the user's program in
    # sagemaker_program: run that instead of the built-in trainer.
    from sklearn_byoc.train.script_mode import is_script_mode

    if is_script_mode(raw):
        from sklearn_byoc.train.script_mode import run_training

        run_training(paths, raw, input_config)
        return

    from sklearn_byoc.common.supervisor import run_worker

    run_worker("train", "sklearn_byoc.train.cli:train_builtin", worker_args(raw, input_config),
               [paths.failure_file], what=what_trains(paths), level=level,
               memory_advice=memory_advice(paths))


def what_trains(paths: Paths) -> str:
    """Who ran out of memory, in a job's failure reason: with several instances, which one."""
    resources = ResourceConfig.read(paths.training_resourceconfig_file)
    if not resources.is_distributed:
        return WHAT
    return (f"the training on {resources.current_host} (one of {len(resources.hosts)} "
            f"instances, holding about 1/{len(resources.hosts)} of the rows)")


def memory_advice(paths: Paths) -> str:
    if not ResourceConfig.read(paths.training_resourceconfig_file).is_distributed:
        return MEMORY_ADVICE
    return ("use more instances (instance_count), an instance type with more memory, or a "
            "smaller sample_rows (what the first instance fits gradient_boosting and other "
            "models without a distributed form on)")


def worker_args(raw: dict, input_config: dict) -> list[str]:
    """What the supervisor read, handed to the worker: the channels, then one argument per
    hyperparameter (SageMaker allows 100 of up to 2,500 characters each, more than Linux
    takes in one argument: 128 KiB)."""
    return [json.dumps(input_config)] + [json.dumps([k, v]) for k, v in raw.items()]


def train_builtin(args: list[str]) -> None:
    """The built-in trainer, in the worker process."""
    from sklearn_byoc.train.trainer import train

    input_config = json.loads(args[0])
    raw = dict(json.loads(pair) for pair in args[1:])
    settings = hyperparameters.read_settings(raw)
    paths = Paths.from_env()
    resources = ResourceConfig.read(paths.training_resourceconfig_file)
    if resources.is_distributed:
        from sklearn_byoc.train.leader import train_on_instances

        result = train_on_instances(paths, settings, input_config, resources)
    else:
        result = train(paths, settings, input_config)
    for line in result.metric_lines if result else []:
        print(line, flush=True)


def run(argv: list[str]) -> None:
    """The ``train`` command; exits with the stage's status."""
    # SageMaker runs the image with the command "train"; a shim may pass it on.
    args = [a for a in argv if a != "train"]
    if any(a in HELP_ARGS for a in args):
        print(usage())
        sys.exit(0)
    paths = Paths.from_env()
    run_stage("train", lambda: main(args), [paths.failure_file])
