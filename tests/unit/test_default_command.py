"""The image's default command picks the stage from what the job laid out."""
import json
import os
import subprocess
import sys

import pytest

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.default_command import default_stage
from sklearn_byoc.common.errors import UserError
from tests.sagemaker_tree import DATA, processing_tree


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


@pytest.mark.parametrize("name", ["hyperparameters.json", "resourceconfig.json"])
def test_a_training_job_config_means_train(tmp_path, name):
    write(tmp_path / "input" / "config" / name, {})
    assert default_stage(Paths(tmp_path)) == "train"


def test_a_processing_job_config_means_processing(tmp_path):
    base = processing_tree(tmp_path, {"churn.csv": DATA})
    assert default_stage(Paths(base)) == "processing"


def test_a_processing_resource_config_alone_is_not_a_training_job(tmp_path):
    write(tmp_path / "config" / "resourceconfig.json", {"current_host": "algo-1"})
    with pytest.raises(UserError, match="processing, train, serve"):
        default_stage(Paths(tmp_path))


def test_nothing_laid_out_names_the_three_commands(tmp_path):
    with pytest.raises(UserError) as caught:
        default_stage(Paths(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path) in message
    for stage in ("processing", "train", "serve"):
        assert stage in message


def test_the_command_fails_in_one_line_without_a_job(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sklearn_byoc.common.default_command"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "run the image with one of the commands processing, train, serve" in result.stderr


def test_the_command_hands_over_to_the_stage_on_path(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "train"
    stand_in.write_text('#!/bin/sh\necho "train ran with $# arguments"\n')
    stand_in.chmod(0o755)
    write(tmp_path / "ml" / "input" / "config" / "hyperparameters.json", {"model": "ridge"})
    result = subprocess.run(
        [sys.executable, "-m", "sklearn_byoc.common.default_command"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path / "ml"),
             "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "train ran with 0 arguments\n"
