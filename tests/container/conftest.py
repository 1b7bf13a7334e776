"""Session fixtures for the tests that build and run the real image.

The image is built once per session on top of the Dockerfile's base image, or
of a stand-in base (kept between sessions) where no registry can be pulled
from.  Without a container tool the tests skip, saying what to install;
under CI (CI=true) a missing tool fails them instead.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests import container_tool as ct
from tests.sagemaker_tree import DATA, training_tree

# Figures shown at the end of the run.
FIGURES = pytest.StashKey[dict]()


def unavailable(reason: str):
    if ct.in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def figures(config) -> dict:
    return config.stash.setdefault(FIGURES, {})


@pytest.fixture(scope="session")
def container_tool(request) -> ct.Tool:
    tool = ct.detect()
    if tool is None:
        unavailable("no container tool found: " + ct.INSTALL_HINT)
    tool.remove_leftovers()
    request.addfinalizer(lambda: tool.remove_leftovers(include_own=True))
    return tool


@pytest.fixture(scope="session")
def base_image(container_tool, request) -> str:
    started = time.monotonic()
    try:
        base = ct.ensure_base_image(container_tool)
    except ct.ContainerToolMissing as exc:
        unavailable(str(exc))
    figures(request.config)["base image"] = (
        f"{base} (ready in {time.monotonic() - started:.0f} s)")
    return base


@pytest.fixture(scope="session")
def image(container_tool, base_image, request, tmp_path_factory) -> str:
    log = tmp_path_factory.mktemp("build") / "build.log"
    started = time.monotonic()
    tag = ct.build_image(container_tool, base=base_image, log=log)
    seen = figures(request.config)
    seen["image build"] = f"{time.monotonic() - started:.0f} s with {container_tool.name}"
    seen["image size"] = f"{container_tool.image_size(tag) / 1e6:.0f} MB ({tag})"
    return tag


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
    return figures(request.config).__setitem__


def pytest_terminal_summary(terminalreporter, config):
    seen = config.stash.get(FIGURES, {})
    if seen:
        terminalreporter.section("container image")
        for name, value in seen.items():
            terminalreporter.write_line(f"{name}: {value}")
