import importlib.metadata
import shutil
import time
from pathlib import Path

import pytest

from tests import container_tool as ct
from scripts.harness import DATA, run_stage, training_tree


def _sagemaker_major() -> int:
    try:
        return int(importlib.metadata.version("sagemaker").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return 0


# SDK v2 (tests/sdk, .venv) and SDK v3 (tests/sdk3, .venv-sdk3, `make test-sdk3`)
# cannot be installed side by side: each venv collects only its own SDK's tests.
collect_ignore = ["sdk"] if _sagemaker_major() >= 3 else ["sdk3"]

TESTS = Path(__file__).resolve().parent

# Tests that must not run beside others (pytest -m serial, after the parallel pass): the
# real image and the SDK (one image build, fixed ports, the SDK's port 8080), and tests
# that load the CPU or time what they measure.
SERIAL_FOLDERS = ("container", "sdk", "sdk3", "benchmarks")
SERIAL_MODULES = ("hardening/test_serve_load.py", "contract/test_ping_under_load.py",
                  "contract/test_worker_spread.py", "contract/test_train_hosts.py",
                  "hardening/test_stage_interruptions.py")

# What can differ between scikit-learn lines, run again on each older line (make test-lines,
# pytest -m lines): the modules that read scikit-learn's internals or its pickles without a
# branch of their own, the one that relies on how pandas parses a CSV file in chunks (each
# line has its own pandas), and the test modules that exercise them
# (tests/unit/test_line_selection.py keeps this list honest).
# Module -> its names that read scikit-learn's internals or pickles ("*": all of them).
INTERNALS = {"sklearn_byoc.common.compat": ("quiet_version_warnings", "fast_config",
                                             "ordinal_encoder", "nul_byte_offset"),
             "sklearn_byoc.serve.fast_trees": "*",
             "sklearn_byoc.serve.fast_linear": "*", "sklearn_byoc.common.fast_preprocess": "*",
             "sklearn_byoc.common.pickle_versions": "*",
             "sklearn_byoc.common.model_files": ("load_model", "save_model"),
             "sklearn_byoc.train.hyperparameters": "*", "sklearn_byoc.train.estimators": "*",
             "sklearn_byoc.common.tables.csv_chunks": "*"}
LINE_MODULES = ("unit/test_compat.py", "unit/test_fast_trees.py", "unit/test_fast_linear.py",
                "unit/test_fast_preprocess.py", "unit/test_pickle_versions.py",
                "unit/test_model_files.py", "unit/test_hyperparameters.py",
                "unit/test_estimators.py", "unit/test_small_data.py",
                "unit/test_holdout_stable.py", "unit/test_build_pipeline.py",
                "unit/test_distributed.py", "unit/test_identifiers.py", "unit/test_invocation.py",
                "unit/test_trainer_memory.py", "unit/test_csv_chunks.py",
                "contract/test_old_sklearn_lines.py",
                "contract/test_readme_recipe.py", "contract/test_train_stage.py",
                "contract/test_serve_stage.py", "contract/test_date_features.py")


def pytest_collection_modifyitems(items):
    for item in items:
        relative = Path(str(item.fspath)).resolve().relative_to(TESTS).as_posix()
        if relative.split("/")[0] in SERIAL_FOLDERS or relative in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)
        if relative in LINE_MODULES:
            item.add_marker(pytest.mark.lines)


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
