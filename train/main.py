"""``train``: the SageMaker training job entry point.

Reads the job's configuration from /opt/ml/input, fits a model and writes it
to /opt/ml/model; on failure, writes the reason to /opt/ml/output/failure and
exits non-zero.
"""
import sys
from pathlib import Path

# Run as a script, Python puts this folder first on sys.path; the project root
# is where the shared packages live.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from common.contract import Hyperparameters, Paths, read_input_data_config  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.failure import run_stage  # noqa: E402


def main(args: list[str]) -> None:
    if args:
        raise UserError(f"train takes no arguments (got {' '.join(args)}); it reads its "
                        "settings from hyperparameters.json")
    paths = Paths.from_env()
    hyperparameters = Hyperparameters.read(paths.hyperparameters_file)
    input_config = read_input_data_config(paths.inputdataconfig_file)

    # A framework estimator (entry_point=...) names the user's program in
    # sagemaker_program: run that instead of the built-in trainer.
    from train.script_mode import is_script_mode

    if is_script_mode(hyperparameters.raw):
        from train.script_mode import run_training

        run_training(paths, hyperparameters.raw, input_config)
        return

    from train.trainer import train

    result = train(paths, hyperparameters, input_config)
    for line in result.metric_lines:
        print(line, flush=True)


if __name__ == "__main__":
    # SageMaker runs the image with the command "train"; a shim may pass it on.
    args = [a for a in sys.argv[1:] if a != "train"]
    paths = Paths.from_env()
    run_stage("train", lambda: main(args), [paths.failure_file])
