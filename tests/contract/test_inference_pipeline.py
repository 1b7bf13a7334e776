"""Inference pipelines and multi-container endpoints.

SageMaker runs each container of an inference pipeline (``PipelineModel``) or
a multi-container endpoint on the port it names in SAGEMAKER_BIND_TO_PORT,
and in a pipeline passes one container's answer to the next as its request
body, with the answer's content type as the next request's Content-Type.

Here the first container serves the churn classifier and answers class
probabilities; the second serves a model the train stage fitted on those
probabilities (features = probabilities, target = churn).  The chain's answer
must equal doing both steps by hand, in-process, with the two model files.
"""
from __future__ import annotations

import io
import json

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from scripts.harness import DATA, run_stage, training_tree
from scripts.serve_process import ServeProcess as Server, free_port

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


def container(base, port, **env) -> Server:
    """``serve`` started the way a pipeline starts it: no --port, only the variable."""
    return Server(base, {"SAGEMAKER_BIND_TO_PORT": str(port), **env}, workers=1,
                  port_argument=False)


def by_hand_features(model_dir, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as the training pipeline saw them: categorical cells as text."""
    metadata = json.loads((model_dir / "metadata.json").read_text())
    columns = {}
    for feature in metadata["features"]:
        column = frame[feature["name"]]
        columns[feature["name"]] = column.astype(str).astype(object) \
            if feature["kind"] == "categorical" else column.astype(float)
    return pd.DataFrame(columns)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.read_csv(DATA)


@pytest.fixture(scope="module")
def first(trained_model, tmp_path_factory):
    """Container 1: the churn classifier, answering probabilities as CSV by default."""
    port = free_port()
    base = tmp_path_factory.mktemp("container-1")
    (base / "model").symlink_to(trained_model / "model")
    with container(base, port, SAGEMAKER_INFERENCE_OUTPUT="probabilities",
                   SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv") as server:
        yield server


@pytest.fixture(scope="module")
def second_model(first, frame, tmp_path_factory):
    """A model trained by the train stage on container 1's answers for the first rows."""
    rows = frame.iloc[:800]
    answer = first.invoke(rows.drop(columns=["churn"]).to_csv(index=False, header=False))
    assert answer.status_code == 200, answer.text
    probabilities = pd.read_csv(io.StringIO(answer.text), header=None, names=["p_no", "p_yes"])
    assert len(probabilities) == len(rows)
    table = probabilities.assign(churn=rows["churn"].to_numpy())
    base = training_tree(tmp_path_factory.mktemp("train-second"),
                         {"train": {"train.csv": table.to_csv(index=False)}},
                         {"target": "churn", "model": "linear"})
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr
    return base / "model"


@pytest.fixture(scope="module")
def second(second_model, tmp_path_factory):
    port = free_port()
    base = tmp_path_factory.mktemp("container-2")
    (base / "model").symlink_to(second_model)
    with container(base, port) as server:
        yield server


def test_serve_listens_on_sagemaker_bind_to_port(first, second):
    for server in (first, second):
        assert server.port_argument is False
        assert requests.get(f"http://127.0.0.1:{server.port}/ping", timeout=5).status_code \
            == 200
        assert f"listening on 127.0.0.1:{server.port}" in server.log()
    assert first.port != second.port


def test_the_output_can_be_chosen_per_container_or_per_request(first, frame):
    rows = frame.drop(columns=["churn"]).iloc[:5].to_csv(index=False, header=False)
    probabilities = first.invoke(rows)
    assert probabilities.status_code == 200
    assert all(len(line.split(",")) == 2 for line in probabilities.text.splitlines())
    labels = first.invoke(rows, **{CUSTOM_ATTRIBUTES: "output=label"})
    assert labels.status_code == 200
    assert set(labels.text.split()) <= {"yes", "no"}


def test_a_two_container_pipeline_equals_both_models_by_hand(first, second, second_model,
                                                             trained_model, frame):
    batch = frame.iloc[2000:2300]
    body = batch.drop(columns=["churn"]).to_csv(index=False, header=False)

    # What SageMaker does between the containers: answer n is request n + 1.
    one = requests.post(first.url + "/invocations", data=body,
                        headers={"Content-Type": "text/csv", "Accept": "*/*"}, timeout=60)
    assert one.status_code == 200, one.text
    two = requests.post(second.url + "/invocations", data=one.content,
                        headers={"Content-Type": one.headers["Content-Type"]}, timeout=60)
    assert two.status_code == 200, two.text
    assert one.headers["Content-Type"].startswith("text/csv")
    served = two.text.splitlines()

    # By hand: the two fitted scikit-learn pipelines, one after the other.
    model_one = joblib.load(trained_model / "model" / "model.joblib")
    model_two = joblib.load(second_model / "model.joblib")
    probabilities = model_one.predict_proba(by_hand_features(trained_model / "model", batch))
    intermediate = pd.read_csv(io.StringIO(one.text), header=None).to_numpy()
    np.testing.assert_allclose(intermediate, probabilities, rtol=0, atol=1e-9)
    expected = model_two.predict(pd.DataFrame(probabilities, columns=["p_no", "p_yes"]))

    assert len(served) == len(batch)
    assert served == [str(label) for label in expected]
    # The chain's answers are not constant, and they track the truth.
    assert len(set(served)) == 2
    accuracy = np.mean(np.asarray(served) == batch["churn"].to_numpy())
    assert accuracy > 0.6


def test_a_json_request_flows_through_as_csv(first, second, frame):
    """The client sends JSON; container 1 answers CSV (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT,
    as pipelines set it on intermediate containers) and the last container answers in
    the client's Accept."""
    batch = frame.drop(columns=["churn"]).iloc[100:140]
    request = json.dumps({"instances": batch.to_dict(orient="records")})
    one = requests.post(first.url + "/invocations", data=request,
                        headers={"Content-Type": "application/json"}, timeout=60)
    assert one.status_code == 200, one.text
    assert one.headers["Content-Type"].startswith("text/csv")
    two = requests.post(second.url + "/invocations", data=one.content,
                        headers={"Content-Type": one.headers["Content-Type"],
                                 "Accept": "application/json"}, timeout=60)
    assert two.status_code == 200, two.text

    csv_one = first.invoke(batch.to_csv(index=False, header=False))
    csv_two = second.invoke(csv_one.content)
    assert one.content == csv_one.content
    assert two.json()["predictions"] == csv_two.text.split()
