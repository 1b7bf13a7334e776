"""Session fixtures for the tests that build and run the real image.

The image (tests/conftest.py) is built once per session on top of the Dockerfile's base image, or
of a stand-in base (kept between sessions) where no registry can be pulled
from.  Without a container tool the tests skip, saying what to install;
under CI (CI=true) a missing tool fails them instead.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests import container_tool as ct
from tests.conftest import IMAGE_FIGURES, image_figures
from scripts.harness import DATA, training_tree

@pytest.fixture(scope="session")
def image_model(container_tool, image, tmp_path_factory) -> Path:
    """The model folder written by ``train`` inside the image, on the bundled data."""
    base = tmp_path_factory.mktemp("image-train")
    training_tree(base, {"train": [DATA]}, {"target": "churn"})
    result = container_tool.run(image, ["train"], mounts=[ct.Mount(base, "/opt/ml")])
    assert result.returncode == 0, result.stderr
    return base / "model"


@pytest.fixture
def model_copy(image_model, tmp_path) -> Path:
    """A copy of the trained model that any user can read (and nobody else writes to)."""
    target = tmp_path / "model"
    shutil.copytree(image_model, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


@pytest.fixture
def record_figure(request):
    """``record_figure(name, text)``: a figure for the end-of-run summary."""
    return image_figures(request.config).__setitem__


def pytest_terminal_summary(terminalreporter, config):
    seen = config.stash.get(IMAGE_FIGURES, {})
    if seen:
        terminalreporter.section("container image")
        for name, value in seen.items():
            terminalreporter.write_line(f"{name}: {value}")
