"""The image's default command: which stage a container started without one runs.

SageMaker names the command for a training job (``train``) and an endpoint or
transform job (``serve``); a processing job passes none unless its
``ContainerEntrypoint`` does.  Clients that run the image locally do not all
follow the service: SDK v3's local ``ModelTrainer`` writes a compose service
with no command.  So the default reads what the platform laid out under
``/opt/ml`` (``SAGEMAKER_BASE_DIR``) before the container started:

- ``input/config/hyperparameters.json`` or ``input/config/resourceconfig.json``:
  a training job, ``train``;
- ``config/processingjobconfig.json``: a processing job, ``processing``.

A command given to the container always wins: this runs only when there is none.
"""
from __future__ import annotations

import os
import sys

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError

STAGES = ("processing", "train", "serve")


def default_stage(paths: Paths) -> str:
    """The stage the job laid out under ``paths`` is for."""
    if paths.hyperparameters_file.is_file() or paths.training_resourceconfig_file.is_file():
        return "train"
    if paths.processingjobconfig_file.is_file():
        return "processing"
    raise UserError(
        f"no command given and {paths.base} holds neither a training job's input/config "
        "nor a processing job's config/processingjobconfig.json: run the image with one of "
        f"the commands {', '.join(STAGES)}")


def main() -> None:
    try:
        stage = default_stage(Paths.from_env())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    # The stage replaces this process, so the platform's signals reach it directly.
    os.execvp(stage, [stage])


if __name__ == "__main__":
    main()
