import shutil
from pathlib import Path

import pytest

from tests.sagemaker_tree import DATA, run_stage, training_tree


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> Path:
    """A model trained by the real train stage on the bundled data; returns its tree."""
    base = tmp_path_factory.mktemp("trained")
    training_tree(base, {"train": [DATA]}, {"target": "churn"})
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr
    return base


@pytest.fixture
def serving_tree(trained_model, tmp_path) -> Path:
    """A fresh endpoint tree holding a copy of the trained model."""
    base = tmp_path / "endpoint"
    shutil.copytree(trained_model / "model", base / "model")
    return base
