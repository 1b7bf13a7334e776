"""``processing evaluate`` as functions: the report layout, the test data, the pictures."""
from __future__ import annotations

import json
import math
import shutil
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.processing import evaluate as ev
from tests.sagemaker_tree import DATA

TARGET = "churn"


def write_split(folder: Path, rows: slice = slice(0, 300), *, header: bool = True,
               drop: list[str] = ()) -> Path:
    """Rows of the bundled data laid out as prepare writes test/: target first."""
    frame = pd.read_csv(DATA).iloc[rows]
    frame = frame[[TARGET] + [c for c in frame.columns if c != TARGET]].drop(columns=list(drop))
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "test.csv", index=False, header=header)
    return folder


def run(tmp_path: Path, model_dir: Path, test_dir: Path, *extra: str) -> dict:
    out = tmp_path / "evaluation"
    ev.evaluate(["--model-dir", str(model_dir), "--test-dir", str(test_dir),
                 "--output-dir", str(out), *extra], Paths(tmp_path))
    return json.loads((out / ev.REPORT_FILE).read_text())


# -- the layout SageMaker reads ------------------------------------------------------
def test_binary_report_matches_the_model(trained_model, tmp_path):
    test_dir = write_split(tmp_path / "test")
    report = run(tmp_path, trained_model / "model", test_dir, "--bootstrap", "20")

    assert list(report) == [ev.BINARY]
    section = report[ev.BINARY]
    for name in ("accuracy", "precision", "recall", "f1", "auc"):
        assert set(section[name]) == {"value", "standard_deviation"}, name
        assert 0 <= section[name]["value"] <= 1
        assert section[name]["standard_deviation"] > 0
    # The numbers are the model's own: predict the same rows directly.
    model = joblib.load(trained_model / "model" / "model.joblib")
    frame = pd.read_csv(test_dir / "test.csv")
    predicted = model.predict(frame.drop(columns=[TARGET]))
    truth = frame[TARGET].to_numpy()
    assert section["accuracy"]["value"] == pytest.approx(float(np.mean(predicted == truth)))
    matrix = section["confusion_matrix"]
    assert set(matrix) == {"no", "yes"} and all(set(row) == {"no", "yes"}
                                                for row in matrix.values())
    assert sum(sum(row.values()) for row in matrix.values()) == len(frame)
    assert matrix["yes"]["yes"] == int(np.sum((truth == "yes") & (predicted == "yes")))
    roc = section["receiver_operating_characteristic_curve"]
    assert len(roc["false_positive_rates"]) == len(roc["true_positive_rates"]) > 2
    assert roc["false_positive_rates"][0] == 0 and roc["true_positive_rates"][-1] == 1
    pr = section["precision_recall_curve"]
    assert len(pr["precisions"]) == len(pr["recalls"]) > 2


def test_no_bootstrap_reports_nan_as_sagemaker_spells_it(trained_model, tmp_path):
    report = run(tmp_path, trained_model / "model", write_split(tmp_path / "test"),
                 "--bootstrap", "0")
    assert report[ev.BINARY]["accuracy"]["standard_deviation"] == "NaN"


def test_a_model_tarball_is_unpacked(trained_model, tmp_path):
    """What a pipeline hands over: the training job's model.tar.gz, alone in the folder."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        for path in (trained_model / "model").iterdir():
            tar.add(path, arcname=path.name)
    report = run(tmp_path, model_dir, write_split(tmp_path / "test"), "--bootstrap", "0")
    assert report[ev.BINARY]["accuracy"]["value"] > 0.5


def test_headerless_test_data_is_read_target_first(trained_model, tmp_path):
    with_header = run(tmp_path / "a", trained_model / "model",
                      write_split(tmp_path / "a" / "test"), "--bootstrap", "0")
    without = run(tmp_path / "b", trained_model / "model",
                  write_split(tmp_path / "b" / "test", header=False), "--bootstrap", "0")
    assert with_header == without


def test_categorical_codes_that_look_like_numbers_are_typed_as_in_training(tmp_path):
    """A category column of digits is text to the model: evaluate must not feed numbers."""
    from tests.sagemaker_tree import run_stage, training_tree

    rng = np.random.default_rng(0)
    n = 400
    plan = rng.choice(["1", "2", "3", "x"], n)
    amount = rng.normal(size=n)
    label = np.where((plan == "2") | (amount > 1), "yes", "no")
    frame = pd.DataFrame({"label": label, "plan": plan, "amount": amount})
    source = tmp_path / "train.csv"
    frame.to_csv(source, index=False)
    base = training_tree(tmp_path / "job", {"train": [source]}, {"target": "label"})
    assert run_stage("train", base).returncode == 0
    # The test split holds only digit codes, so pandas reads the column as numbers.
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    frame[frame.plan != "x"].to_csv(test_dir / "test.csv", index=False)
    report = run(tmp_path, base / "model", test_dir, "--bootstrap", "0")
    assert report[ev.BINARY]["accuracy"]["value"] > 0.9


def test_multiclass_and_regression_sections(tmp_path):
    classes = ["a", "b", "c"]
    y = np.array(["a", "b", "c", "a", "b", "c", "a"], dtype=object)
    pred = np.array(["a", "b", "b", "a", "c", "c", "a"], dtype=object)
    proba = np.eye(3)[[0, 1, 1, 0, 2, 2, 0]] * 0.8 + 0.2 / 3
    report = ev.classification_report(y, pred, proba, classes, rounds=10, seed=1)
    section = report[ev.MULTICLASS]
    assert section["accuracy"]["value"] == pytest.approx(5 / 7)
    assert section["confusion_matrix"]["c"] == {"a": 0, "b": 1, "c": 1}
    assert "receiver_operating_characteristic_curve" not in section

    regression = ev.regression_report([1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 2.5, 4.0], rounds=0,
                                      seed=0)
    metrics = regression[ev.REGRESSION]
    assert set(metrics) == {"mse", "rmse", "mae", "r2"}
    assert metrics["mse"]["value"] == pytest.approx(0.125)
    assert metrics["rmse"]["value"] == pytest.approx(math.sqrt(0.125))
    assert metrics["mae"]["value"] == pytest.approx(0.25)


def test_confusion_matrix_lists_labels_the_model_never_predicts():
    matrix = ev.confusion_matrix(np.array([0, 1, 2], dtype=object),
                                 np.array([0, 0, 0], dtype=object), [0, 1, 2])
    assert matrix == {"0": {"0": 1, "1": 0, "2": 0}, "1": {"0": 1, "1": 0, "2": 0},
                      "2": {"0": 1, "1": 0, "2": 0}}


def test_bootstrap_is_repeatable_and_shrinks_with_more_rows():
    def spread(n):
        rng = np.random.default_rng(3)
        y = rng.integers(0, 2, n)
        p = np.where(rng.random(n) < 0.8, y, 1 - y)
        return ev.bootstrap_std(
            lambda rows: {"accuracy": float(np.mean(y[rows] == p[rows]))}, n, 200, seed=7)

    assert spread(100) == spread(100)
    assert spread(2000)["accuracy"] < spread(100)["accuracy"] / 2


# -- pictures --------------------------------------------------------------------------
def test_pictures_are_well_formed_svg():
    odd = "<yes & more>"
    matrix = {"no": {"no": 5, odd: 1}, odd: {"no": 0, odd: 7}}
    root = ET.fromstring(ev.confusion_svg(matrix, "model on 13 rows"))
    assert root.tag.endswith("svg")
    texts = [t.text for t in root.iter() if t.tag.endswith("text")]
    assert {"5", "1", "0", "7", odd} <= set(texts)

    y = np.linspace(0, 10, 50)
    root = ET.fromstring(ev.residuals_svg(y, y + 0.5, "regression"))
    assert len([e for e in root.iter() if e.tag.endswith("circle")]) == 50


# -- errors name the file and the fix ------------------------------------------------------
def test_missing_model_names_the_folder(tmp_path):
    with pytest.raises(UserError, match=r"model.*does not exist"):
        run(tmp_path, tmp_path / "nowhere", write_split(tmp_path / "test"))


def test_empty_model_folder_names_the_missing_file(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(UserError, match=r"model\.joblib is missing"):
        run(tmp_path, tmp_path / "model", write_split(tmp_path / "test"))


def test_missing_test_data_names_the_folder_and_the_fix(trained_model, tmp_path):
    with pytest.raises(UserError, match=r"test data folder .*nowhere does not exist.*"
                                         r"ProcessingInput"):
        run(tmp_path, trained_model / "model", tmp_path / "nowhere")


def test_missing_target_column_names_the_file(trained_model, tmp_path):
    test_dir = write_split(tmp_path / "test", drop=[TARGET])
    with pytest.raises(UserError, match=r"test\.csv.*no column 'churn'.*--target"):
        run(tmp_path, trained_model / "model", test_dir)


def test_missing_feature_column_is_named(trained_model, tmp_path):
    test_dir = write_split(tmp_path / "test", drop=["region"])
    with pytest.raises(UserError, match=r"lacks feature column\(s\) 'region'"):
        run(tmp_path, trained_model / "model", test_dir)


def test_text_in_a_numeric_feature_is_reported_with_its_place(trained_model, tmp_path):
    test_dir = write_split(tmp_path / "test")
    frame = pd.read_csv(test_dir / "test.csv")
    frame["tenure_months"] = frame["tenure_months"].astype(object)
    frame.loc[3:, "tenure_months"] = "long"
    frame.to_csv(test_dir / "test.csv", index=False)
    with pytest.raises(UserError, match=r"'tenure_months' is numeric.*'long'.*line 5"):
        run(tmp_path, trained_model / "model", test_dir)


def test_bad_options_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--bootstrap"):
        ev.parse_options(["--bootstrap", "-1"], Paths(tmp_path))
    with pytest.raises(UserError, match="unrecognized arguments"):
        ev.parse_options(["--no-such-option"], Paths(tmp_path))


def test_defaults_are_under_the_processing_folder(tmp_path):
    options = ev.parse_options([], Paths(tmp_path))
    assert options.model_dir == tmp_path / "processing" / "model"
    assert options.test_dir == tmp_path / "processing" / "test"
    assert options.output_dir == tmp_path / "processing" / "evaluation"


@pytest.fixture(autouse=True)
def _no_stray_model_dirs(monkeypatch, tmp_path):
    """load_model unpacks tarballs under the temp dir; keep them inside this test's folder."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    yield
    shutil.rmtree(tmp_path / "tmp", ignore_errors=True)
