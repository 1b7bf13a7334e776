"""``train``: the SageMaker training job entry point.

Reads the job's configuration from /opt/ml/input, fits a model and writes it
to /opt/ml/model; on failure, writes the reason to /opt/ml/output/failure and
exits non-zero.
"""
from sklearn_byoc.common.contract import Hyperparameters, Paths, read_input_data_config
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.failure import run_stage


def main(args: list[str]) -> None:
    if args:
        raise UserError(f"train takes no arguments (got {' '.join(args)}); it reads its "
                        "settings from hyperparameters.json")
    paths = Paths.from_env()
    hyperparameters = Hyperparameters.read(paths.hyperparameters_file)
    input_config = read_input_data_config(paths.inputdataconfig_file)

    # A framework estimator (entry_point=...) names the user's program in
    # sagemaker_program: run that instead of the built-in trainer.
    from sklearn_byoc.train.script_mode import is_script_mode

    if is_script_mode(hyperparameters.raw):
        from sklearn_byoc.train.script_mode import run_training

        run_training(paths, hyperparameters.raw, input_config)
        return

    from sklearn_byoc.train.trainer import train

    result = train(paths, hyperparameters, input_config)
    for line in result.metric_lines if result else []:
        print(line, flush=True)


def run(argv: list[str]) -> None:
    """The ``train`` command; exits with the stage's status."""
    # SageMaker runs the image with the command "train"; a shim may pass it on.
    args = [a for a in argv if a != "train"]
    paths = Paths.from_env()
    run_stage("train", lambda: main(args), [paths.failure_file])
