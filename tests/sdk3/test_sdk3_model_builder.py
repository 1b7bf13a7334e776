"""SDK v3's ModelBuilder in local container mode, through examples/sdk_v3_local.py,
against the real image and tests/fakes/docker_engine.py.

The model folder holds what the image's `train` wrote (v3's ModelTrainer), with no
inference.py and no command: v3 sets SAGEMAKER_PROGRAM=inference.py, which the image
ignores when the model has no code.  Each request type is one ModelBuilder (v3 picks
the serializer from the SchemaBuilder's sample); v3 serves on the fixed port 8080,
so the endpoints run one after the other.
"""
from __future__ import annotations

import csv

import pytest

from scripts.harness import DATA

# sagemaker.serve makes a boto3 client when imported, which needs a region: the
# local_mode fixture sets one, so it is imported only inside the tests.
pytest.importorskip("sagemaker.train", reason="make test-sdk3 (SDK v3 in .venv-sdk3)")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tests.sdk3.conftest import example  # noqa: E402

# v3's LocalEndpoint.create also starts the model through `docker compose` in a
# thread of its own (docs/sdk-v3.md, "A second container"); deleting the endpoint
# stops it, and that thread then raises "Process exited with code: -15".
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    frame = pd.read_csv(DATA)
    return frame.drop(columns=[example.TARGET]).head(5)


@pytest.fixture(scope="module")
def labels() -> list[str]:
    with DATA.open(newline="") as fh:
        return sorted({row[example.TARGET] for row in csv.DictReader(fh)})


@pytest.fixture(scope="module")
def model_dir(builtin_model, tmp_path_factory):
    return example.model_folder(builtin_model, tmp_path_factory.mktemp("model-builder"))


def served(engine_image, model_dir, sample_input, rows):
    """Deploy, answer ``rows`` (and the sample, v3's health check), stop: the answers."""
    builder, endpoint = example.deploy_local(engine_image, model_dir, sample_input,
                                             {"predictions": ["no"]})
    try:
        return endpoint.invoke(body=rows)
    finally:
        example.stop_local(builder, endpoint)


def predictions(answer) -> list:
    # v3's MMS client wraps the decoded answer in a list, then json.dumps it.
    import json

    decoded = json.loads(answer.body.read())
    assert isinstance(decoded, list) and len(decoded) == 1, decoded
    return decoded[0]["predictions"]


def test_csv_in_json_out(docker_engine, model_dir, features, labels):
    answer = served(docker_engine, model_dir, features, features)
    got = predictions(answer)
    assert len(got) == len(features) and set(got) <= set(labels)


def test_json_in_json_out(docker_engine, model_dir, features, labels):
    rows = features.values.tolist()
    answer = served(docker_engine, model_dir, rows, rows[:3])
    got = predictions(answer)
    assert len(got) == 3 and set(got) <= set(labels)


def test_numpy_in_json_out(docker_engine, model_dir, features, labels):
    array = features.to_numpy(dtype=str)
    answer = served(docker_engine, model_dir, array, array[:2])
    got = predictions(answer)
    assert len(got) == 2 and set(got) <= set(labels)
