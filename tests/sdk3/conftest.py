"""The SageMaker Python SDK v3 in local container mode, unmodified, driving the real image.

Runs in its own venv (``make test-sdk3``: ``.venv-sdk3`` from requirements-sdk3.txt);
tests/conftest.py keeps these tests out of the v2 venv and v2's out of this one.
v3's ``ModelTrainer`` and local batch transform run through the ``docker`` /
``docker compose`` CLI, which ``tests/fakes`` stands in for (each service run
with the container tool of ``tests/container_tool.py``); ``ModelBuilder``'s
local serving talks to the Docker Engine API, which ``tests/fakes/docker_engine.py``
serves on a unix socket named by ``DOCKER_HOST``.  No AWS account is
involved: fake credentials, every AWS endpoint pointed at a closed loopback
port, IAM role validation off, telemetry off through the SDK's defaults config.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests import container_tool as ct
from tests.conftest import unavailable
from tests.sdk_environment import FAKES, use_stand_ins
from scripts.harness import DATA, ROOT

_spec = importlib.util.spec_from_file_location("sdk_v3_local", ROOT / "examples" / "sdk_v3_local.py")
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)
IMAGE_ENV = "SAGEMAKER_SDK_TEST_IMAGE"


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(str(Path(__file__).parent)):
            item.add_marker(pytest.mark.sdk)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sdk3_image(request) -> str:
    """The image of tests/conftest.py, or the tag in $SAGEMAKER_SDK_TEST_IMAGE."""
    given = os.environ.get(IMAGE_ENV)
    if not given:
        return request.getfixturevalue("image")
    tool = ct.detect()
    if tool is None:
        unavailable("no container tool found: " + ct.INSTALL_HINT)
    if not tool.exists(given):
        pytest.fail(f"{IMAGE_ENV}={given} is not an image on this machine")
    return given


def closed_port() -> int:
    """A loopback port nothing listens on: a stray AWS call fails at once, offline."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def local_mode(sdk3_image, tmp_path_factory):
    """Stand-ins first on PATH, fake credentials, no telemetry, no reachable AWS."""
    state = tmp_path_factory.mktemp("fakes-state")
    with pytest.MonkeyPatch.context() as patch:
        use_stand_ins(patch, state, f"http://127.0.0.1:{closed_port()}", "us-east-1")
        # A role ARN is otherwise checked through IAM, which is not reachable.
        patch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")
        yield sdk3_image


@pytest.fixture(scope="session")
def docker_engine(local_mode):
    """tests/fakes/docker_engine.py on a unix socket, named by DOCKER_HOST."""
    # A unix socket path has at most 107 bytes: a short folder of its own.
    folder = Path(tempfile.mkdtemp(prefix="engine-"))
    sock = folder / "docker.sock"
    log = (folder / "engine.log").open("w")
    process = subprocess.Popen([sys.executable, str(FAKES / "docker_engine.py"), str(sock)],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not sock.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the Docker Engine stand-in did not start:\n"
                        + (folder / "engine.log").read_text())
        time.sleep(0.1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DOCKER_HOST", f"unix://{sock}")
            yield local_mode
    finally:
        process.terminate()  # stops any container still running
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def train_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train")
    shutil.copy(DATA, folder / "churn.csv")
    return folder


@pytest.fixture(scope="session")
def builtin_model(local_mode, train_dir, tmp_path_factory) -> Path:
    """A model.tar.gz from v3's ModelTrainer with the image's built-in trainer."""
    return example.train_builtin(local_mode, train_dir, tmp_path_factory.mktemp("builtin"),
                                 {"model": "random_forest"})


BUCKET = "sdk3-local-mode"


@pytest.fixture(scope="module")
def moto_s3(local_mode):
    """moto's S3 on 127.0.0.1 as every AWS endpoint: v3's local processing uploads its
    local inputs to the session's default bucket."""
    pytest.importorskip("moto.server", reason="make test-sdk3 (moto in .venv-sdk3)")
    import boto3
    from moto.server import ThreadedMotoServer

    port = closed_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL", url)
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
            yield url
    finally:
        server.stop()


@pytest.fixture
def local_session(moto_s3, tmp_path):
    """``make(cls)``: a session of class ``cls`` on moto's S3, its own container root."""
    import boto3

    def make(cls):
        root = tmp_path / f"root-{cls.__module__.split('.')[1]}"
        root.mkdir(exist_ok=True)  # v3 makes its temporary folders inside
        session = cls(boto_session=boto3.Session(region_name="us-east-1"),
                      s3_endpoint_url=moto_s3, default_bucket=BUCKET)
        session.config = {"local": {"local_code": True, "container_root": str(root)}}
        return session

    return make
