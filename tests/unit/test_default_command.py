"""The image's default command: the stage of the job SageMaker laid out, when none is named."""
import json

import pytest

from sklearn_byoc.common import default_command
from sklearn_byoc.common.contract import Paths


def lay(base, relative: str, content=None):
    path = base / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content or {}))


@pytest.mark.parametrize("files, stage", [
    (["config/processingjobconfig.json", "config/resourceconfig.json"], "processing"),
    (["input/config/hyperparameters.json", "input/config/resourceconfig.json"], "train"),
    (["input/config/inputdataconfig.json"], "train"),  # SDK v3 local: no hyperparameters
    (["input/config/resourceconfig.json"], "train"),
    (["config/resourceconfig.json"], None),  # a processing job always has its job config
    ([], None),
])
def test_the_stage_is_the_job_laid_out(tmp_path, files, stage):
    for relative in files:
        lay(tmp_path, relative)
    assert default_command.stage_for(Paths(tmp_path)) == stage


def test_it_runs_that_stage_with_the_arguments(tmp_path, monkeypatch, capsys):
    lay(tmp_path, "input/config/hyperparameters.json", {"model": "knn"})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    ran = []
    monkeypatch.setattr(default_command.os, "execvp", lambda name, argv: ran.append(argv))
    assert default_command.main(["--x"]) == 0
    assert ran == [["train", "--x"]]
    assert "no command given: running train" in capsys.readouterr().err


def test_with_no_job_it_names_the_three_commands_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    monkeypatch.setattr(default_command.os, "execvp", lambda *a: pytest.fail("ran a stage"))
    assert default_command.main([]) == default_command.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "run the image with one of the commands processing, train, serve" in err[0]
    assert "config/processingjobconfig.json" in err[0] and "input/config/" in err[0]
