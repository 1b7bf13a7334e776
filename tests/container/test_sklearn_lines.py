"""The image built for an older scikit-learn line (SKLEARN_VERSION=1.2) beside the default
one: each serves the models pickled by its own line with that line's predictions; the
default image refuses a 1.2 model it cannot use with one line naming the image that can.

The 1.2 image is built once per session under its own tag.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import requests

from tests import container_tool as ct
from tests.container.test_image import ImageServer, sh
from tests.old_sklearn import ALL, REFUSED, assert_predictions_match, build_argument
from scripts.harness import DATA, ROOT, training_tree
from scripts.serve_process import free_port

OLD_LINE = "1.2"
OLD_TAG = f"{ct.IMAGE_TAG}-sklearn{OLD_LINE}"
OLD_FIXTURES = [f for f in ALL if f.line == OLD_LINE]
LABEL = "sagemaker-sklearn-byoc.scikit-learn-line"

pytestmark = pytest.mark.container


@pytest.fixture(scope="session")
def old_image(container_tool, base_image, image_figures_of, tmp_path_factory) -> str:
    log = tmp_path_factory.mktemp("build-old") / "build.log"
    started = time.monotonic()
    tag = ct.build_image(container_tool, OLD_TAG, base=base_image, sklearn_version=OLD_LINE,
                         log=log)
    image_figures_of[f"image build, scikit-learn {OLD_LINE}"] = \
        f"{time.monotonic() - started:.0f} s"
    image_figures_of[f"image size, scikit-learn {OLD_LINE}"] = \
        f"{container_tool.image_size(tag) / 1e6:.0f} MB ({tag})"
    return tag


@pytest.fixture(scope="session")
def image_figures_of(request) -> dict:
    from tests.conftest import image_figures

    return image_figures(request.config)


def model_folder(fixture, tmp_path: Path) -> Path:
    """A copy of the fixture's model that any user can read."""
    target = tmp_path / "model"
    shutil.copytree(fixture.folder, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def test_each_image_says_its_line(container_tool, image, old_image):
    assert container_tool.image_config(image)["Labels"][LABEL] == ct.default_sklearn_line()
    assert container_tool.image_config(old_image)["Labels"][LABEL] == OLD_LINE


def test_the_old_image_holds_its_lines_lock(container_tool, old_image):
    from tests.container.test_image import normalize, pinned_requirements

    result = sh(container_tool, old_image, """python -c 'import importlib.metadata as m
for d in m.distributions(): print(d.metadata["Name"].lower(), d.version)'""")
    assert result.returncode == 0, result.stderr
    installed = {normalize(name): version
                 for name, version in (line.split() for line in result.stdout.strip().splitlines())}
    pins = pinned_requirements(ROOT / "requirements" / f"sklearn-{OLD_LINE}.txt")
    assert pins["scikit-learn"].startswith(OLD_LINE + ".")
    for name, version in pins.items():
        assert installed.get(name) == version, name


def assert_served_like_its_line(server, fixture) -> None:
    """The fixture's request with every output: the predictions its line recorded."""
    answer = requests.post(
        server.url + "/invocations",
        data=json.dumps({"instances": fixture.request["instances"]}),
        headers={"Content-Type": "application/json", "Accept": "application/json",
                 "X-Amzn-SageMaker-Custom-Attributes": "output=all"}, timeout=60)
    assert answer.status_code == 200, answer.text + "\n" + server.log()[-2000:]
    body = answer.json()
    assert_predictions_match(fixture, body["predictions"], body["probabilities"],
                             body["classes"])


@pytest.mark.parametrize("fixture", OLD_FIXTURES, ids=str)
def test_the_old_image_serves_its_lines_models_with_their_predictions(
        container_tool, old_image, fixture, tmp_path):
    model = model_folder(fixture, tmp_path)
    server = ImageServer(container_tool, old_image, model, tmp_path / "serve.log")
    with server:
        assert_served_like_its_line(server, fixture)
    assert " WARNING " not in server.log(), server.log()


@pytest.mark.parametrize("fixture", OLD_FIXTURES, ids=str)
def test_the_default_image_refuses_or_serves_an_old_model_as_measured(
        container_tool, image, fixture, tmp_path):
    model = model_folder(fixture, tmp_path)
    if fixture.outcome(ct.default_sklearn_line()) != REFUSED:
        server = ImageServer(container_tool, image, model, tmp_path / "serve.log")
        with server:
            assert_served_like_its_line(server, fixture)
        warnings = [line for line in server.log().splitlines() if " serve WARNING " in line]
        assert len(warnings) == 1 and build_argument(fixture) in warnings[0], server.log()
        return
    result = container_tool.run(
        image, ["serve", "--host", "127.0.0.1", "--port", str(free_port())],
        mounts=[ct.Mount(model, "/opt/ml/model", read_only=True)], timeout=180)
    assert result.returncode == 1
    errors = [line for line in (result.stdout + result.stderr).splitlines()
              if " serve ERROR " in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert f"/opt/ml/model/{fixture.model_file.name} was pickled by scikit-learn " \
           f"{fixture.version} and this image runs scikit-learn" in errors[0]
    assert build_argument(fixture) in errors[0]


def test_a_model_trained_by_the_old_image_records_its_line_and_is_served_by_it(
        container_tool, old_image, image, tmp_path):
    base = tmp_path / "job"
    training_tree(base, {"train": [DATA]}, {"target": "churn"})
    result = container_tool.run(old_image, ["train"], mounts=[ct.Mount(base, "/opt/ml")])
    assert result.returncode == 0, result.stderr
    model = base / "model"
    versions = json.loads((model / "metadata.json").read_text())["versions"]
    assert versions["scikit-learn-line"] == OLD_LINE
    assert versions["scikit-learn"].startswith(OLD_LINE + ".")
    for path in [model, *model.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    with ImageServer(container_tool, old_image, model, tmp_path / "serve.log") as server:
        rows = "\n".join(line.rsplit(",", 1)[0]
                         for line in DATA.read_text().splitlines()[1:6]) + "\n"
        answer = requests.post(server.url + "/invocations", data=rows,
                               headers={"Content-Type": "text/csv"}, timeout=60)
        assert answer.status_code == 200 and len(answer.text.split()) == 5, answer.text
    # The default image's scikit-learn cannot use the 1.2 line's gradient boosting.
    refused = container_tool.run(
        image, ["serve", "--host", "127.0.0.1", "--port", str(free_port())],
        mounts=[ct.Mount(model, "/opt/ml/model", read_only=True)], timeout=180)
    assert refused.returncode == 1
    assert f"SKLEARN_VERSION={OLD_LINE}" in refused.stdout + refused.stderr
