import shutil
import time
from pathlib import Path

import pytest

from tests import container_tool as ct
from scripts.harness import DATA, run_stage, training_tree

# Figures about the image, shown at the end of the run (tests/container/conftest.py).
IMAGE_FIGURES = pytest.StashKey[dict]()


def image_figures(config) -> dict:
    return config.stash.setdefault(IMAGE_FIGURES, {})


def unavailable(reason: str):
    """Skip, saying what is missing; under CI (CI=true) fail instead."""
    if ct.in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


# -- the real image, built once per session for the container and SDK tests ----------
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
    image_figures(request.config)["base image"] = (
        f"{base} (ready in {time.monotonic() - started:.0f} s)")
    return base


@pytest.fixture(scope="session")
def image(container_tool, base_image, request, tmp_path_factory) -> str:
    log = tmp_path_factory.mktemp("build") / "build.log"
    started = time.monotonic()
    tag = ct.build_image(container_tool, base=base_image, log=log)
    seen = image_figures(request.config)
    seen["image build"] = f"{time.monotonic() - started:.0f} s with {container_tool.name}"
    seen["image size"] = f"{container_tool.image_size(tag) / 1e6:.0f} MB ({tag})"
    return tag


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
