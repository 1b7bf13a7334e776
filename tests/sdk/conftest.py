"""The SageMaker Python SDK v2 in local mode, unmodified, driving the real image.

Local mode runs every job through ``docker compose``; ``tests/fakes`` puts a
``docker`` and a ``docker-compose`` stand-in first on PATH, which run the
compose services with the container tool of ``tests/container_tool.py``.
No AWS account is involved: moto's S3 server on 127.0.0.1 is the bucket,
fake credentials are in the environment, every AWS endpoint points at moto
(so a stray call lands there, not on the internet), and the SDK's telemetry
is switched off through its defaults config.

Without a container tool the tests skip, saying what to install; under CI
(CI=true) they fail instead.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests import container_tool as ct
from tests.conftest import unavailable
from tests.sdk_environment import FAKES, use_stand_ins
from scripts.harness import DATA, processing_tree, run_stage
from scripts.serve_process import free_port

# Set this to an image tag to test that image instead of building one.
IMAGE_ENV = "SAGEMAKER_SDK_TEST_IMAGE"
FIGURES = pytest.StashKey[dict]()
REGION = "us-east-1"
# Local inputs of a Processor are uploaded to the default bucket; naming it
# spares the SDK the STS call that derives a name from the account.
BUCKET = "sdk-local-mode"
ROLE = "arn:aws:iam::111122223333:role/SageMakerRole"


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(pytest.mark.sdk)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def figures(request) -> dict:
    return request.config.stash.setdefault(FIGURES, {})


def pytest_terminal_summary(terminalreporter, config):
    seen = config.stash.get(FIGURES, {})
    if seen:
        terminalreporter.section("SageMaker SDK local mode")
        for name, value in seen.items():
            terminalreporter.write_line(f"{name}: {value}")


# -- the image ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sdk_image(request, figures) -> str:
    """The image of tests/conftest.py (or the tag in $SAGEMAKER_SDK_TEST_IMAGE)."""
    pytest.importorskip("sagemaker", reason="pip install -r requirements-dev.txt")
    import sagemaker

    figures["SDK"] = f"sagemaker {sagemaker.__version__}"
    given = os.environ.get(IMAGE_ENV)
    if not given:
        return request.getfixturevalue("image")
    tool = ct.detect()
    if tool is None:
        unavailable("no container tool found: " + ct.INSTALL_HINT)
    if not tool.exists(given):
        pytest.fail(f"{IMAGE_ENV}={given} is not an image on this machine")
    return given


# -- the environment local mode runs in -------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_s3(sdk_image) -> str:
    """moto's server on 127.0.0.1: S3 (and any other AWS API the SDK might call)."""
    pytest.importorskip("moto.server", reason="pip install -r requirements-dev.txt")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def local_mode(moto_s3, tmp_path_factory):
    """Environment for the SDK: stand-ins on PATH, fake credentials, no telemetry.

    Module-scoped, so that none of it outlives the SDK tests."""
    state = tmp_path_factory.mktemp("fakes-state")
    with pytest.MonkeyPatch.context() as patch:
        use_stand_ins(patch, state, moto_s3, REGION)
        patch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        try:
            yield state
        finally:
            stop_leftovers(state)


def stop_leftovers(state: Path, timeout: float = 60) -> None:
    """Stop every compose `up` still running (the SDK leaves one behind when a transform
    fails), then remove containers an interrupted run left."""
    sys.path.insert(0, str(FAKES))
    try:
        import compose
    finally:
        sys.path.remove(str(FAKES))
    os.environ["SAGEMAKER_FAKES_STATE"] = str(state)
    for record, pid in compose.running_records():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + timeout
        while not (record / "status").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    tool = ct.detect()
    if tool is not None:
        tool.remove_leftovers()


@pytest.fixture
def no_leftovers(local_mode):
    """Fails the test if it leaves a compose `up` (and so a container) running."""
    yield
    sys.path.insert(0, str(FAKES))
    try:
        import compose
    finally:
        sys.path.remove(str(FAKES))
    deadline = time.monotonic() + 30
    while compose.running_records() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert compose.running_records() == [], "a compose `up` is still running"


@pytest.fixture
def session_factory(local_mode, moto_s3, tmp_path):
    """``make(pipeline=False)``: a LocalSession (or LocalPipelineSession) on moto's S3,
    with its own container root and a free serving port."""
    import boto3

    def make(pipeline: bool = False):
        from sagemaker.local import LocalSession
        from sagemaker.workflow.pipeline_context import LocalPipelineSession

        cls = LocalPipelineSession if pipeline else LocalSession
        root = tmp_path / "container-root"
        root.mkdir(exist_ok=True)
        session = cls(boto_session=boto3.Session(region_name=REGION), s3_endpoint_url=moto_s3,
                      default_bucket=BUCKET)
        session.config = {"local": {"local_code": True, "container_root": str(root),
                                    "serving_port": free_port()}}
        return session

    return make


@pytest.fixture(scope="session")
def splits(tmp_path_factory) -> Path:
    """train/ validation/ test/ test_features/ from a real `processing prepare` run."""
    base = processing_tree(tmp_path_factory.mktemp("splits"), {"churn.csv": DATA})
    result = run_stage("processing", base, ["prepare", "--target", "churn"])
    assert result.returncode == 0, result.stderr
    return base / "processing" / "output"
