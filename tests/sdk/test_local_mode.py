"""Estimator.fit, deploy, Transformer and Processor of SDK v2 local mode against the image."""
from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
import time
from pathlib import Path

import joblib
import pandas as pd
import pytest
import requests

from scripts.harness import DATA

from .conftest import BUCKET, ROLE

TARGET = "churn"


def run_quietly(call, *args, **kwargs) -> tuple[object, str]:
    """Call an SDK method with logs=False; returns its result and what the containers printed
    (local mode copies the compose output to stdout)."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            result = call(*args, **kwargs)
    except BaseException:
        print(out.getvalue())  # shown by pytest with the failure
        raise
    return result, out.getvalue()


def local_path(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(uri[len("file://"):])


def model_from(tarball: Path, into: Path):
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        tar.extractall(into, filter="data")
    return names, joblib.load(into / "model.joblib"), json.loads(
        (into / "metadata.json").read_text())


def features(path: Path) -> pd.DataFrame:
    """The headerless test features, typed the way training saw them."""
    names = [c for c in pd.read_csv(DATA, nrows=0).columns if c != TARGET]
    frame = pd.read_csv(path, header=None, names=names)
    for name in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            frame[name] = frame[name].astype(object)
    return frame


# -- training ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(sdk_image, local_mode, moto_s3, splits, tmp_path_factory, figures):
    """Estimator.fit in local mode on the prepared splits; (estimator, model dir, log)."""
    import boto3
    from sagemaker.estimator import Estimator
    from sagemaker.local import LocalSession

    from pipeline import metric_definitions

    root = tmp_path_factory.mktemp("fit")
    session = LocalSession(boto_session=boto3.Session(region_name="us-east-1"),
                           s3_endpoint_url=moto_s3, default_bucket=BUCKET)
    session.config = {"local": {"local_code": True, "container_root": str(root / "containers")}}
    (root / "containers").mkdir()
    estimator = Estimator(
        image_uri=sdk_image, role=ROLE, instance_count=1, instance_type="local",
        output_path=f"file://{root / 'output'}", hyperparameters={"target": TARGET},
        metric_definitions=metric_definitions(), sagemaker_session=session,
    )
    started = time.monotonic()
    _, log = run_quietly(estimator.fit, {"train": f"file://{splits / 'train'}",
                                         "validation": f"file://{splits / 'validation'}"},
                         logs=False)
    figures["Estimator.fit"] = f"{time.monotonic() - started:.1f} s"
    return estimator, root, log


def test_fit_writes_a_model_tarball_serve_can_use(trained, tmp_path):
    estimator, _, _ = trained
    tarball = local_path(estimator.model_data)
    assert tarball.name == "model.tar.gz" and tarball.is_file()
    names, model, metadata = model_from(tarball, tmp_path)
    assert {"model.joblib", "metadata.json"} <= set(names)
    assert metadata["target"] == TARGET and metadata["task"] == "classification"
    assert hasattr(model, "predict_proba")


def test_fit_log_has_every_metric_the_definitions_expect(trained):
    """The definitions cover both tasks; a classification job prints each of its own."""
    from sklearn_byoc.common.metrics import CLASSIFICATION_METRICS

    estimator, _, log = trained
    assert "exited with code 0" in log
    expected = {f"{split}:{name}" for split in ("train", "validation")
                for name in CLASSIFICATION_METRICS}
    for definition in estimator.metric_definitions:
        found = re.findall(definition["Regex"], log)
        if definition["Name"] not in expected:
            assert not found, f"{definition['Name']} printed by a classification job"
            continue
        assert found, f"{definition['Name']} was not printed"
        assert 0 <= float(found[-1]) <= 1 or "log_loss" in definition["Name"]


def test_fit_failure_is_reported_with_the_reason(sdk_image, session_factory, splits, tmp_path,
                                                 no_leftovers):
    from sagemaker.estimator import Estimator

    estimator = Estimator(
        image_uri=sdk_image, role=ROLE, instance_count=1, instance_type="local",
        output_path=f"file://{tmp_path / 'out'}", hyperparameters={"target": "no_such_column"},
        sagemaker_session=session_factory(),
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(RuntimeError, match="exited with code: 1"):
        estimator.fit({"train": f"file://{splits / 'train'}"}, logs=False)
    assert "no_such_column" in out.getvalue()


def test_fit_on_three_instances_trains_on_every_one(sdk_image, session_factory, splits,
                                                   tmp_path, no_leftovers):
    """instance_count=3: three containers that reach each other by service name; the first
    writes the one model (FullyReplicated: v2's local mode refuses ShardedByS3Key)."""
    from sagemaker.estimator import Estimator

    estimator = Estimator(
        image_uri=sdk_image, role=ROLE, instance_count=3, instance_type="local",
        output_path=f"file://{tmp_path / 'out'}", sagemaker_session=session_factory(),
        hyperparameters={"target": TARGET, "model": "random_forest", "n_estimators": 30},
    )
    _, log = run_quietly(estimator.fit, {"train": f"file://{splits / 'train'}"}, logs=False)
    names, model, metadata = model_from(local_path(estimator.model_data), tmp_path / "model")
    assert metadata["hosts"]["count"] == 3 and metadata["hosts"]["fit"] == "trees per host"
    assert len(model.named_steps["model"].estimators_) == 30
    hosts = sorted(set(re.findall(r"this is (algo-\d-\w+), one of 3 instances", log)))
    assert len(hosts) == 3, log[-3000:]
    assert f"the job ended on {hosts[0]}; this instance wrote nothing" in log


# -- real-time endpoint ----------------------------------------------------------------------------
def test_deploy_predicts_what_the_model_predicts(trained, session_factory, splits, tmp_path,
                                                 figures, no_leftovers):
    from sagemaker.deserializers import CSVDeserializer, JSONDeserializer
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer, JSONSerializer

    estimator, _, _ = trained
    _, model, metadata = model_from(local_path(estimator.model_data), tmp_path)
    rows = (splits / "test_features" / "test_features.csv").read_text().splitlines()[:40]
    expected = list(model.predict(features(splits / "test_features" / "test_features.csv")
                                  .iloc[:40]))

    session = session_factory()
    port = session.config["local"]["serving_port"]
    deployable = Model(image_uri=estimator.image_uri, model_data=estimator.model_data,
                       role=ROLE, predictor_cls=Predictor, sagemaker_session=session)
    started = time.monotonic()
    predictor, _ = run_quietly(deployable.deploy, 1, "local", serializer=CSVSerializer(),
                               deserializer=CSVDeserializer())
    figures["Model.deploy (to first /ping)"] = f"{time.monotonic() - started:.1f} s"
    try:
        answer = predictor.predict("\n".join(rows))
        assert [line[0] for line in answer] == expected

        predictor.serializer = JSONSerializer()
        predictor.deserializer = JSONDeserializer()
        names = [feature["name"] for feature in metadata["features"]]
        named = [dict(zip(names, row.split(","))) for row in rows]
        answer = predictor.predict({"instances": named})
        assert answer["predictions"] == expected

        # The endpoint listens on loopback only.
        assert requests.get(f"http://127.0.0.1:{port}/ping", timeout=5).status_code == 200
    finally:
        started = time.monotonic()
        predictor.delete_endpoint()
        figures["delete_endpoint (graceful stop)"] = f"{time.monotonic() - started:.1f} s"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/ping", timeout=5)


# -- batch transform -------------------------------------------------------------------------------
def test_transform_multirecord_one_line_per_input_line_in_order(trained, session_factory, splits,
                                                               tmp_path, figures, no_leftovers):
    from sagemaker.model import Model

    estimator, _, _ = trained
    _, model, _ = model_from(local_path(estimator.model_data), tmp_path / "model")
    # Enough lines for several 1 MB requests: order must survive the batching.
    lines = (splits / "test_features" / "test_features.csv").read_text().splitlines()
    repeated = (lines * (30000 // len(lines) + 1))[:30000]
    data = tmp_path / "input"
    data.mkdir()
    (data / "features.csv").write_text("\n".join(repeated) + "\n")
    expected = list(model.predict(features(data / "features.csv")))

    model = Model(image_uri=estimator.image_uri, model_data=estimator.model_data, role=ROLE,
                  sagemaker_session=session_factory())
    transformer = model.transformer(
        instance_count=1, instance_type="local", strategy="MultiRecord", assemble_with="Line",
        accept="text/csv", max_payload=1, output_path=f"file://{tmp_path / 'output'}",
    )
    started = time.monotonic()
    _, log = run_quietly(transformer.transform, f"file://{data}", content_type="text/csv",
                         split_type="Line", logs=False)
    figures["Transformer.transform (30000 lines, 1 MB requests)"] = (
        f"{time.monotonic() - started:.1f} s")
    requests_made = log.count("POST /invocations 200")
    assert requests_made >= 2, log[-3000:]
    output = (tmp_path / "output" / "features.csv.out").read_text()
    # Local mode writes a newline after each response (AssembleWith=Line), so
    # the file holds exactly one line per input line only if no response
    # ends in a line break of its own.
    predicted = output.split("\n")
    assert predicted[-1] == ""
    predicted = predicted[:-1]
    assert "" not in predicted, (f"{predicted.count('')} empty line(s) in the output "
                                 f"after {requests_made} requests")
    assert len(predicted) == len(repeated)
    assert predicted == expected


# -- processing ------------------------------------------------------------------------------------
def download(session, uri: str, target: Path) -> Path:
    """Every object under an s3:// prefix (moto's S3 here), into ``target``."""
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    target.mkdir(parents=True, exist_ok=True)
    listed = session.s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    for item in listed.get("Contents", []):
        relative = item["Key"][len(prefix):].lstrip("/") or Path(item["Key"]).name
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        session.s3_client.download_file(bucket, item["Key"], str(target / relative))
    return target


def test_processor_runs_prepare_and_evaluate(sdk_image, trained, session_factory, tmp_path,
                                            figures, no_leftovers):
    """Local folders in, S3 (moto) out: the SDK uploads inputs and downloads nothing."""
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor

    estimator, _, _ = trained
    session = session_factory()
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "churn.csv").write_bytes(DATA.read_bytes())
    base = f"s3://{BUCKET}/processor-{int(time.time() * 1000)}"
    prepare = Processor(image_uri=sdk_image, role=ROLE, instance_count=1, instance_type="local",
                        entrypoint=["processing", "prepare"], sagemaker_session=session)
    started = time.monotonic()
    run_quietly(prepare.run, inputs=[
        ProcessingInput(source=str(raw), destination="/opt/ml/processing/input")],
        outputs=[ProcessingOutput(output_name=name, source=f"/opt/ml/processing/output/{name}",
                                  destination=f"{base}/{name}/")
                 for name in ("train", "validation", "test", "test_features")],
        arguments=["--target", TARGET], logs=False)
    figures["Processor.run (prepare)"] = f"{time.monotonic() - started:.1f} s"
    out = tmp_path / "splits"
    for name in ("train", "validation", "test", "test_features"):
        download(session, f"{base}/{name}/", out / name)
    counts = {name: len(pd.read_csv(out / name / f"{name}.csv"))
              for name in ("train", "validation", "test")}
    assert sum(counts.values()) > 2900 and counts["train"] > counts["test"] > 0
    test_features = (out / "test_features" / "test_features.csv").read_text().splitlines()
    assert len(test_features) == counts["test"]

    # The training job's model.tar.gz alone in its folder, as a pipeline passes it.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.tar.gz").write_bytes(local_path(estimator.model_data).read_bytes())
    evaluate = Processor(image_uri=sdk_image, role=ROLE, instance_count=1,
                         instance_type="local", entrypoint=["processing", "evaluate"],
                         sagemaker_session=session)
    run_quietly(evaluate.run, inputs=[
        ProcessingInput(source=str(model_dir), destination="/opt/ml/processing/model"),
        # The trailing slash keeps .../test_features/ out of the S3 prefix.
        ProcessingInput(source=f"{base}/test/", destination="/opt/ml/processing/test")],
        outputs=[ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation",
                                  destination=f"{base}/evaluation")],
        arguments=["--bootstrap", "20"], logs=False)
    evaluation = download(session, f"{base}/evaluation", tmp_path / "evaluation")
    report = json.loads((evaluation / "evaluation.json").read_text())
    assert report["binary_classification_metrics"]["accuracy"]["value"] > 0.6
    assert (evaluation / "confusion_matrix.svg").is_file()


def test_processor_failure_shows_the_reason(sdk_image, session_factory, tmp_path, no_leftovers):
    from sagemaker.processing import ProcessingInput, Processor

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "churn.csv").write_bytes(DATA.read_bytes())
    prepare = Processor(image_uri=sdk_image, role=ROLE, instance_count=1, instance_type="local",
                        entrypoint=["processing", "prepare"], sagemaker_session=session_factory())
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(RuntimeError, match="exited with code: 1"):
        prepare.run(inputs=[ProcessingInput(source=str(raw),
                                            destination="/opt/ml/processing/input")],
                    arguments=["--target", "no_such_column"], logs=False)
    assert "no_such_column" in out.getvalue()
