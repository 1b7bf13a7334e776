"""SDK v3's ModelTrainer (built-in trainer and script mode) and a local batch transform,
each through examples/sdk_v3_local.py, against the real image.

v3's compose service passes no command: the image's default picks `train`
from the job's input/config (sklearn_byoc/common/default_command.py).
"""
from __future__ import annotations

import csv

import pytest

from scripts.harness import DATA, ROOT

pytest.importorskip("sagemaker.train", reason="make test-sdk3 (SDK v3 in .venv-sdk3)")

from tests.sdk3.conftest import example


def test_model_trainer_with_the_built_in_trainer_and_no_command(builtin_model):
    assert builtin_model.is_file()
    names = example.model_files(builtin_model)
    assert "model.joblib" in names and "metadata.json" in names


def test_model_trainer_in_script_mode(local_mode, train_dir, tmp_path):
    model_tar = example.train_script(local_mode, train_dir,
                                     ROOT / "tests" / "fixtures" / "user_script", tmp_path)
    assert "model.joblib" in example.model_files(model_tar)


def test_local_batch_transform(local_mode, builtin_model, tmp_path):
    features = example.features_file(DATA, tmp_path / "in" / "churn.csv")
    out = example.batch_transform(local_mode, builtin_model, features.parent, tmp_path / "out",
                                  tmp_path / "root")
    scored = out / "churn.csv.out"
    assert scored.is_file(), sorted(p.name for p in out.iterdir())
    with DATA.open(newline="") as fh:
        rows = len(list(csv.reader(fh))) - 1
    labels = scored.read_text().split()
    assert len(labels) == rows
    assert set(labels) <= {"yes", "no"}
