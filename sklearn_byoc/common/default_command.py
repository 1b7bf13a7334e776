"""The image's default command: the stage SageMaker laid out, when a job names none.

SageMaker always starts a training job with the command ``train`` and an endpoint with
``serve``, and a processing job with its ``ContainerEntrypoint`` or none at all; SDK v3's
local mode starts a training container with no command.  With no command the image runs
this: the stage whose configuration is under ``/opt/ml`` (``SAGEMAKER_BASE_DIR``):

- ``config/processingjobconfig.json``: a processing job -> ``processing``;
- ``input/config/`` (hyperparameters.json, inputdataconfig.json, resourceconfig.json): a
  training job -> ``train``;
- neither: one line naming the three commands, exit code 2.

A command given to the container always wins: this runs only when none is.
"""
from __future__ import annotations

import os
import sys

from sklearn_byoc.common.contract import Paths

STAGES = ("processing", "train", "serve")
EXIT_USAGE = 2


def stage_for(paths: Paths) -> str | None:
    if paths.processingjobconfig_file.is_file():
        return "processing"
    if any(p.is_file() for p in (paths.hyperparameters_file, paths.inputdataconfig_file,
                                 paths.training_resourceconfig_file)):
        return "train"
    return None


def usage(paths: Paths) -> str:
    return (f"no command was given and {paths.base} holds neither a processing job "
            f"({paths.processingjobconfig_file.relative_to(paths.base)}) nor a training job "
            f"({paths.input_config_dir.relative_to(paths.base)}/): run the image with one of "
            f"the commands {', '.join(STAGES)} (docker run IMAGE train)")


def main(argv: list[str]) -> int:
    paths = Paths.from_env()
    stage = stage_for(paths)
    if stage is None:
        print(usage(paths), file=sys.stderr)
        return EXIT_USAGE
    print(f"no command given: running {stage}, for the {stage} job under {paths.base}",
          file=sys.stderr, flush=True)
    os.execvp(stage, [stage, *argv])
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
