"""``processing evaluate`` as a processing job runs it: a process on an /opt/ml tree.

The inputs sit where a pipeline's ProcessingInputs put them: the training
job's ``model.tar.gz`` alone in ``/opt/ml/processing/model`` and the test split
written by ``prepare`` in ``/opt/ml/processing/test``.
"""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from scripts.harness import DATA, failure_reason, processing_tree, run_stage


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> Path:
    """The output folder of a real ``processing prepare`` run on the bundled data."""
    base = processing_tree(tmp_path_factory.mktemp("prepare"), {"churn.csv": DATA})
    result = run_stage("processing", base, ["prepare", "--target", "churn"])
    assert result.returncode == 0, result.stderr
    return base / "processing" / "output"


def evaluation_tree(base: Path, trained_model: Path, splits: Path) -> Path:
    model = base / "processing" / "model"
    model.mkdir(parents=True)
    # SageMaker uploads the training job's /opt/ml/model as one model.tar.gz.
    with tarfile.open(model / "model.tar.gz", "w:gz") as tar:
        for path in sorted((trained_model / "model").iterdir()):
            tar.add(path, arcname=path.name)
    test = base / "processing" / "test"
    test.mkdir(parents=True)
    for path in (splits / "test").iterdir():
        (test / path.name).write_bytes(path.read_bytes())
    return base


def test_default_paths_give_the_report_and_the_picture(trained_model, splits, tmp_path):
    base = evaluation_tree(tmp_path, trained_model, splits)
    result = run_stage("processing", base, ["evaluate"])
    assert result.returncode == 0, result.stderr
    out = base / "processing" / "evaluation"
    report = json.loads((out / "evaluation.json").read_text())
    accuracy = report["binary_classification_metrics"]["accuracy"]
    assert 0.5 < accuracy["value"] <= 1
    assert isinstance(accuracy["standard_deviation"], float)
    assert (out / "confusion_matrix.svg").read_text().startswith("<svg")
    assert not (base / "output" / "message").exists()
    assert "evaluated" in result.stderr


def test_paths_from_arguments(trained_model, splits, tmp_path):
    base = evaluation_tree(tmp_path / "job", trained_model, splits)
    out = tmp_path / "elsewhere"
    result = run_stage("processing", base, [
        "evaluate", "--model-dir", str(base / "processing" / "model"),
        "--test-dir", str(base / "processing" / "test"), "--output-dir", str(out),
        "--bootstrap", "0"])
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "evaluation.json").read_text())
    assert report["binary_classification_metrics"]["f1"]["standard_deviation"] == "NaN"


@pytest.mark.parametrize("remove, expected", [
    ("processing/model", "model folder .*processing/model does not exist"),
    ("processing/test", "test data folder .*processing/test does not exist"),
])
def test_missing_input_fails_the_job_with_a_message(trained_model, splits, tmp_path, remove,
                                                     expected):
    import re
    import shutil

    base = evaluation_tree(tmp_path, trained_model, splits)
    shutil.rmtree(base / remove)
    result = run_stage("processing", base, ["evaluate"])
    assert result.returncode == 1
    message = failure_reason(base, "message")
    assert re.search(expected, message), message
    assert failure_reason(base, "failure") == message


def test_test_data_without_the_target_fails_naming_the_file(trained_model, splits, tmp_path):
    base = evaluation_tree(tmp_path, trained_model, splits)
    # The batch-transform input: features only, no target, no header.
    (base / "processing" / "test" / "test.csv").write_bytes(
        (splits / "test_features" / "test_features.csv").read_bytes())
    result = run_stage("processing", base, ["evaluate", "--header", "present"])
    assert result.returncode == 1
    message = failure_reason(base, "message")
    assert "test.csv" in message and "'churn'" in message


def test_help_and_unknown_options(tmp_path):
    result = run_stage("processing", tmp_path, ["evaluate", "--help"])
    assert result.returncode == 0
    assert "--model-dir" in result.stdout and "--test-dir" in result.stdout

    result = run_stage("processing", tmp_path, ["--help"])
    assert result.returncode == 0 and "evaluate" in result.stdout

    result = run_stage("processing", tmp_path, ["evaluate", "--modeldir", "x"])
    assert result.returncode == 1
    assert "processing evaluate --help" in failure_reason(tmp_path, "message")
