"""Bring your own code through the unmodified SDK: script-mode training and inference handlers.

A framework estimator (``SKLearn``) uploads ``source_dir`` as
``sourcedir.tar.gz`` to S3 (moto here) and names it in the
JSON-encoded hyperparameters ``sagemaker_program`` /
``sagemaker_submit_directory``; the image fetches it with boto3, installs its
``requirements.txt`` and runs the script.  A ``Model`` with
``entry_point``/``source_dir`` serves through the user's ``input_fn`` and
``output_fn``.
"""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures.code_archives import make_wheel
from scripts.harness import ROOT

from .conftest import BUCKET, ROLE
from .test_local_mode import features, local_path, model_from, run_quietly

USER_SCRIPT = ROOT / "tests" / "fixtures" / "user_script" / "train.py"
HANDLERS = ROOT / "tests" / "fixtures" / "inference_code" / "inference.py"
ENTRY = """\
# Proves requirements.txt was installed before the script ran.
import tinypkg_sm

print(f"tinypkg_sm says {tinypkg_sm.VALUE}", flush=True)

import train

# Served too (SKLearn.deploy names this file as the inference script): only a
# run as the program trains.
if __name__ == "__main__":
    train.main()
"""


def source_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    folder.mkdir()
    shutil.copy(USER_SCRIPT, folder / "train.py")
    (folder / "entry.py").write_text(ENTRY)
    wheel = make_wheel(folder)
    (folder / "requirements.txt").write_text(f"./{wheel.name}\n")
    return folder


def estimator_for(sdk_image, session, source: Path, output: Path, moto_s3: str, **hp):
    from sagemaker.sklearn import SKLearn

    return SKLearn(
        entry_point="entry.py", source_dir=str(source), image_uri=sdk_image,
        framework_version="1.2-1", py_version="py3", role=ROLE, instance_count=1,
        instance_type="local", output_path=f"file://{output}",
        hyperparameters={"target": "churn", "n_estimators": 25, **hp},
        metric_definitions=[{"Name": "validation:accuracy",
                             "Regex": "validation:accuracy=([0-9.]+);"}],
        # The container reaches the S3 emulator the way a job reaches a VPC endpoint.
        environment={"AWS_ENDPOINT_URL_S3": moto_s3},
        sagemaker_session=session,
    )


def s3_session(session_factory):
    """A local session that uploads code to S3 instead of mounting it."""
    session = session_factory()
    session.config["local"]["local_code"] = False
    return session


@pytest.fixture(scope="module")
def script_trained(sdk_image, local_mode, moto_s3, splits, tmp_path_factory, figures):
    import boto3
    from sagemaker.local import LocalSession

    root = tmp_path_factory.mktemp("byo-fit")
    session = LocalSession(boto_session=boto3.Session(region_name="us-east-1"),
                           s3_endpoint_url=moto_s3, default_bucket=BUCKET)
    (root / "containers").mkdir()
    session.config = {"local": {"local_code": False,
                                "container_root": str(root / "containers")}}
    estimator = estimator_for(sdk_image, session, source_dir(root), root / "output", moto_s3)
    started = time.monotonic()
    _, log = run_quietly(estimator.fit, {"train": f"file://{splits / 'train'}",
                                         "validation": f"file://{splits / 'validation'}"},
                         logs=False)
    figures["SKLearn.fit (script mode, code from S3)"] = f"{time.monotonic() - started:.1f} s"
    return estimator, root, log


def test_script_mode_fetches_code_from_s3_installs_requirements_and_trains(script_trained,
                                                                           tmp_path):
    estimator, _, log = script_trained
    hyperparameters = estimator.hyperparameters()
    # Framework estimators send JSON-encoded values.
    assert json.loads(hyperparameters["sagemaker_program"]) == "entry.py"
    assert json.loads(hyperparameters["sagemaker_submit_directory"]).startswith("s3://")
    assert "tinypkg_sm says 42" in log
    accuracy = float(log.split("validation:accuracy=")[1].split(";")[0])
    assert 0.6 < accuracy <= 1
    with tarfile.open(local_path(estimator.model_data)) as tar:
        names = set(tar.getnames())
    assert {"model.joblib", "metadata.json"} <= names


def test_a_failing_user_script_surfaces_its_own_error(sdk_image, session_factory, moto_s3,
                                                      splits, tmp_path, no_leftovers):
    session = s3_session(session_factory)
    estimator = estimator_for(sdk_image, session, source_dir(tmp_path), tmp_path / "output",
                              moto_s3, target="no_such_column")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(RuntimeError, match="exited with code"):
        estimator.fit({"train": f"file://{splits / 'train'}"}, logs=False)
    # Local mode deletes the job's folders, output/failure included; the stage
    # logs the reason it writes there as its last line.
    log = out.getvalue()
    assert ("ValueError: target column 'no_such_column' is not in the training data"
            in log), log[-2000:]
    assert "(user script entry.py exited with code 1)" in log


def test_model_with_entry_point_serves_through_user_handlers(script_trained, session_factory,
                                                            tmp_path, no_leftovers, figures):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import JSONSerializer

    estimator, _, _ = script_trained
    code = tmp_path / "inference"
    code.mkdir()
    shutil.copy(HANDLERS, code / "inference.py")
    model = Model(image_uri=estimator.image_uri, model_data=estimator.model_data, role=ROLE,
                  entry_point="inference.py", source_dir=str(code), predictor_cls=Predictor,
                  sagemaker_session=session_factory())
    started = time.monotonic()
    predictor, _ = run_quietly(model.deploy, 1, "local", serializer=JSONSerializer(),
                               deserializer=JSONDeserializer())
    figures["Model.deploy with entry_point"] = f"{time.monotonic() - started:.1f} s"
    try:
        customers = [{"tenure_months": 2, "contract": "month-to-month",
                      "monthly_charges": 95.5, "support_calls": 4},
                     {"tenure_months": 60, "contract": "two-year", "monthly_charges": 30.0,
                      "support_calls": 0}]
        answer = predictor.predict({"customers": customers})
        assert [sorted(a) for a in answer["answers"]] == [["churn"]] * 2
        assert all(a["churn"] in ("yes", "no") for a in answer["answers"])
    finally:
        predictor.delete_endpoint()


def test_sklearn_fit_then_deploy_answers_the_default_numpy_predictor(
        script_trained, splits, moto_s3, tmp_path, no_leftovers, figures):
    """SKLearn(entry_point=...).fit(...).deploy(): the SKLearnPredictor it returns sends
    np.save of the array and reads the answer with allow_pickle=False."""
    import numpy as np
    from sagemaker.sklearn import SKLearnPredictor

    estimator, _, _ = script_trained
    _, model, _ = model_from(local_path(estimator.model_data), tmp_path)
    test = features(splits / "test_features" / "test_features.csv").iloc[:25]
    expected = model.predict(test).tolist()
    started = time.monotonic()
    # The code comes from S3 (moto): the container needs its endpoint.
    predictor, _ = run_quietly(estimator.deploy, 1, "local",
                               env={"AWS_ENDPOINT_URL_S3": moto_s3})
    figures["SKLearn.deploy (default predictor)"] = f"{time.monotonic() - started:.1f} s"
    try:
        assert isinstance(predictor, SKLearnPredictor)
        rows = np.array(test.astype(object).where(test.notna(), "").values.tolist())
        answer = predictor.predict(rows)
        assert isinstance(answer, np.ndarray) and answer.tolist() == expected
        single = predictor.predict(rows[0])  # a 1-D array is one row
        assert single.tolist() == expected[:1]
    finally:
        predictor.delete_endpoint()


def test_sklearn_model_for_a_folder_holding_only_model_joblib(sdk_image, session_factory,
                                                              splits, tmp_path, no_leftovers,
                                                              figures):
    """A model trained anywhere: model.tar.gz holds model.joblib alone, no metadata, no code."""
    import joblib
    import numpy as np
    from sagemaker.sklearn import SKLearnModel
    from sklearn.ensemble import RandomForestClassifier

    frame = pd.read_csv(splits / "train" / "train.csv")
    numeric = frame[["customer_age", "tenure_months", "monthly_charges", "support_calls"]]
    estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(
        numeric.fillna(0).to_numpy(), frame["churn"])
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(estimator, folder / "model.joblib")
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder / "model.joblib", arcname="model.joblib")
    rows = numeric.fillna(0).to_numpy()[:30]

    model = SKLearnModel(model_data=f"file://{tarball}", role=ROLE, image_uri=sdk_image,
                         framework_version="1.2-1", py_version="py3",
                         entry_point=None, sagemaker_session=session_factory())
    started = time.monotonic()
    predictor, _ = run_quietly(model.deploy, 1, "local")
    figures["SKLearnModel.deploy (model.joblib alone)"] = f"{time.monotonic() - started:.1f} s"
    try:
        answer = predictor.predict(rows)
        assert answer.tolist() == estimator.predict(rows).tolist()
        assert isinstance(answer, np.ndarray)
    finally:
        predictor.delete_endpoint()
