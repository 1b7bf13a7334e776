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
from scripts.harness import DATA
from sklearn_byoc.processing import evaluate as ev, picture, report as layout

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

    assert list(report) == [layout.BINARY, "quality_gate"]
    section = report[layout.BINARY]
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
    assert report[layout.BINARY]["accuracy"]["standard_deviation"] == "NaN"


def test_a_model_tarball_is_unpacked(trained_model, tmp_path):
    """What a pipeline hands over: the training job's model.tar.gz, alone in the folder."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with tarfile.open(model_dir / "model.tar.gz", "w:gz") as tar:
        for path in (trained_model / "model").iterdir():
            tar.add(path, arcname=path.name)
    report = run(tmp_path, model_dir, write_split(tmp_path / "test"), "--bootstrap", "0")
    assert report[layout.BINARY]["accuracy"]["value"] > 0.5


def test_headerless_test_data_is_read_target_first(trained_model, tmp_path):
    with_header = run(tmp_path / "a", trained_model / "model",
                      write_split(tmp_path / "a" / "test"), "--bootstrap", "0")
    without = run(tmp_path / "b", trained_model / "model",
                  write_split(tmp_path / "b" / "test", header=False), "--bootstrap", "0")
    assert with_header == without


def test_categorical_codes_that_look_like_numbers_are_typed_as_in_training(tmp_path):
    """A category column of digits is text to the model: evaluate must not feed numbers."""
    from scripts.harness import run_stage, training_tree

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
    assert report[layout.BINARY]["accuracy"]["value"] > 0.9


def test_multiclass_and_regression_sections(tmp_path):
    classes = ["a", "b", "c"]
    y = np.array(["a", "b", "c", "a", "b", "c", "a"], dtype=object)
    pred = np.array(["a", "b", "b", "a", "c", "c", "a"], dtype=object)
    proba = np.eye(3)[[0, 1, 1, 0, 2, 2, 0]] * 0.8 + 0.2 / 3
    report = layout.classification_report(y, pred, proba, classes, rounds=10, seed=1)
    section = report[layout.MULTICLASS]
    assert section["accuracy"]["value"] == pytest.approx(5 / 7)
    assert section["confusion_matrix"]["c"] == {"a": 0, "b": 1, "c": 1}
    assert "receiver_operating_characteristic_curve" not in section

    regression = layout.regression_report([1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 2.5, 4.0], rounds=0,
                                      seed=0)
    metrics = regression[layout.REGRESSION]
    assert set(metrics) == {"mse", "rmse", "mae", "r2"}
    assert metrics["mse"]["value"] == pytest.approx(0.125)
    assert metrics["rmse"]["value"] == pytest.approx(math.sqrt(0.125))
    assert metrics["mae"]["value"] == pytest.approx(0.25)


# The names SageMaker's model-quality layout lists for each problem type
# (developer guide, "Model quality metrics": model-monitor-model-quality-metrics).
LAYOUT_MULTICLASS = {
    "confusion_matrix", "accuracy", "weighted_recall", "weighted_precision", "weighted_f0_5",
    "weighted_f1", "weighted_f2", "accuracy_best_constant_classifier",
    "weighted_recall_best_constant_classifier", "weighted_precision_best_constant_classifier",
    "weighted_f0_5_best_constant_classifier", "weighted_f1_best_constant_classifier",
    "weighted_f2_best_constant_classifier"}
LAYOUT_BINARY = {
    "confusion_matrix", "recall", "precision", "accuracy", "recall_best_constant_classifier",
    "precision_best_constant_classifier", "accuracy_best_constant_classifier",
    "true_positive_rate", "true_negative_rate", "false_positive_rate", "false_negative_rate",
    "receiver_operating_characteristic_curve", "precision_recall_curve", "auc", "f0_5", "f1",
    "f2", "f0_5_best_constant_classifier", "f1_best_constant_classifier",
    "f2_best_constant_classifier"}
LAYOUT_REGRESSION = {"mae", "mse", "rmse", "r2"}


def imbalanced_multiclass(n=600, seed=5):
    rng = np.random.default_rng(seed)
    classes = ["ant", "bee", "cat", "dog"]
    y = rng.choice(classes, n, p=[0.55, 0.25, 0.15, 0.05]).astype(object)
    # Right 70 % of the time, otherwise a class drawn at random.
    pred = np.where(rng.random(n) < 0.7, y, rng.choice(classes, n)).astype(object)
    proba = rng.dirichlet(np.ones(4), n)
    return classes, y, pred, proba


def test_multiclass_scores_are_the_layouts_weighted_averages():
    from sklearn import metrics as m

    classes, y, pred, proba = imbalanced_multiclass()
    report = layout.classification_report(y, pred, proba, classes, rounds=0, seed=0)
    section = report[layout.MULTICLASS]
    assert LAYOUT_MULTICLASS <= set(section)
    # The bare names mean the positive class in the binary section: not here.
    assert not {"precision", "recall", "f1"} & set(section)
    assert set(section) - LAYOUT_MULTICLASS <= {"balanced_accuracy", "auc", "log_loss"}

    def value(name):
        return section[name]["value"]

    assert value("accuracy") == pytest.approx(m.accuracy_score(y, pred))
    for name, beta in (("weighted_f0_5", 0.5), ("weighted_f1", 1.0), ("weighted_f2", 2.0)):
        assert value(name) == pytest.approx(
            m.fbeta_score(y, pred, beta=beta, average="weighted", zero_division=0)), name
    assert value("weighted_precision") == pytest.approx(
        m.precision_score(y, pred, average="weighted", zero_division=0))
    assert value("weighted_recall") == pytest.approx(
        m.recall_score(y, pred, average="weighted", zero_division=0))
    # On imbalanced classes the weighted averages are not the macro ones.
    assert abs(value("weighted_f1") - m.f1_score(y, pred, average="macro")) > 0.01
    assert abs(value("weighted_precision")
               - m.precision_score(y, pred, average="macro")) > 0.01


def test_best_constant_classifier_is_the_best_of_every_constant_prediction():
    from sklearn import metrics as m

    classes, y, pred, proba = imbalanced_multiclass()
    section = layout.classification_report(y, pred, proba, classes, rounds=0, seed=0)[layout.MULTICLASS]
    scorers = {
        "accuracy": m.accuracy_score,
        "weighted_recall": lambda t, p: m.recall_score(t, p, average="weighted",
                                                       zero_division=0),
        "weighted_precision": lambda t, p: m.precision_score(t, p, average="weighted",
                                                             zero_division=0),
        "weighted_f1": lambda t, p: m.f1_score(t, p, average="weighted", zero_division=0),
        "weighted_f2": lambda t, p: m.fbeta_score(t, p, beta=2, average="weighted",
                                                  zero_division=0),
    }
    for name, score in scorers.items():
        best = max(score(y, np.full(len(y), c, dtype=object)) for c in classes)
        assert section[f"{name}_best_constant_classifier"]["value"] == pytest.approx(best), name
    # Always the majority class: its share of the test rows.
    share = float(np.mean(y == "ant"))
    assert section["accuracy_best_constant_classifier"]["value"] == pytest.approx(share)


def test_binary_section_has_the_layouts_rates_and_f_scores():
    from sklearn import metrics as m

    rng = np.random.default_rng(2)
    n = 500
    y = rng.choice(["stay", "leave"], n, p=[0.7, 0.3]).astype(object)
    pred = np.where(rng.random(n) < 0.8, y, np.where(y == "stay", "leave", "stay")).astype(object)
    scores = rng.random(n)
    proba = np.column_stack([1 - scores, scores])
    # The positive class is the model's second one.
    section = layout.classification_report(y, pred, proba, ["stay", "leave"], rounds=0,
                                       seed=0)[layout.BINARY]
    assert LAYOUT_BINARY <= set(section)
    truth, said = y == "leave", pred == "leave"
    tp, fp = int(np.sum(truth & said)), int(np.sum(~truth & said))
    fn, tn = int(np.sum(truth & ~said)), int(np.sum(~truth & ~said))
    assert section["true_positive_rate"]["value"] == pytest.approx(tp / (tp + fn))
    assert section["false_negative_rate"]["value"] == pytest.approx(fn / (tp + fn))
    assert section["false_positive_rate"]["value"] == pytest.approx(fp / (fp + tn))
    assert section["true_negative_rate"]["value"] == pytest.approx(tn / (fp + tn))
    assert section["precision"]["value"] == pytest.approx(tp / (tp + fp))
    assert section["f2"]["value"] == pytest.approx(
        m.fbeta_score(truth, said, beta=2))
    # For the positive class's scores, "always leave" is the best constant;
    # for accuracy, "always stay".
    positive_share = float(np.mean(truth))
    assert section["recall_best_constant_classifier"]["value"] == 1.0
    assert section["precision_best_constant_classifier"]["value"] == pytest.approx(
        positive_share)
    assert section["f1_best_constant_classifier"]["value"] == pytest.approx(
        2 * positive_share / (1 + positive_share))
    assert section["accuracy_best_constant_classifier"]["value"] == pytest.approx(
        1 - positive_share)


def test_quality_gate_is_the_share_of_the_constant_predictions_error_removed():
    classes, y, pred, proba = imbalanced_multiclass()
    report = layout.classification_report(y, pred, proba, classes, rounds=20, seed=0)
    gate = report["quality_gate"]
    accuracy = float(np.mean(y == pred))
    majority = float(np.mean(y == "ant"))
    assert gate["value"] == pytest.approx(1 - (1 - accuracy) / (1 - majority))
    assert gate["model_error"] == pytest.approx(1 - accuracy)
    assert gate["baseline_error"] == pytest.approx(1 - majority)
    assert "'ant'" in gate["baseline"]
    assert gate["standard_deviation"] > 0
    assert gate["problem_type"] == "MulticlassClassification"
    assert gate["task"] == "CLASSIFICATION"

    # Predicting the majority class everywhere is exactly the baseline.
    constant = np.full(len(y), "ant", dtype=object)
    report = layout.classification_report(y, constant, None, classes, rounds=0, seed=0)
    assert report["quality_gate"]["value"] == pytest.approx(0.0)


def test_regression_gate_is_r2_whatever_the_units():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(1)
    y = rng.normal(50_000, 9_000, 400)
    pred = y + rng.normal(0, 4_000, 400)
    report = layout.regression_report(y, pred, rounds=0, seed=0)
    assert set(report[layout.REGRESSION]) == LAYOUT_REGRESSION
    gate = report["quality_gate"]
    assert gate["value"] == pytest.approx(r2_score(y, pred))
    # The same model in other units passes or fails the gate alike.
    scaled = layout.regression_report(y / 1000, pred / 1000, rounds=0, seed=0)["quality_gate"]
    assert scaled["value"] == pytest.approx(gate["value"])
    assert gate["problem_type"] == "Regression" and gate["task"] == "REGRESSION"
    assert gate["baseline_error"] == pytest.approx(float(np.var(y)))


def test_a_constant_test_target_gives_a_gate_of_zero():
    report = layout.regression_report([3.0, 3.0, 3.0], [3.0, 3.1, 2.9], rounds=0, seed=0)
    assert report["quality_gate"]["value"] == 0.0
    y = np.array(["a"] * 5, dtype=object)
    report = layout.classification_report(y, y, None, ["a", "b"], rounds=0, seed=0)
    assert report["quality_gate"]["value"] == 0.0


def test_confusion_matrix_lists_labels_the_model_never_predicts():
    matrix = layout.confusion_matrix(np.array([0, 1, 2], dtype=object),
                                 np.array([0, 0, 0], dtype=object), [0, 1, 2])
    assert matrix == {"0": {"0": 1, "1": 0, "2": 0}, "1": {"0": 1, "1": 0, "2": 0},
                      "2": {"0": 1, "1": 0, "2": 0}}


def test_bootstrap_is_repeatable_and_shrinks_with_more_rows():
    def spread(n):
        rng = np.random.default_rng(3)
        y = rng.integers(0, 2, n)
        p = np.where(rng.random(n) < 0.8, y, 1 - y)
        return layout.bootstrap_std(
            lambda rows: {"accuracy": float(np.mean(y[rows] == p[rows]))}, n, 200, seed=7)

    assert spread(100) == spread(100)
    assert spread(2000)["accuracy"] < spread(100)["accuracy"] / 2


# -- pictures --------------------------------------------------------------------------
def test_pictures_are_well_formed_svg():
    odd = "<yes & more>"
    matrix = {"no": {"no": 5, odd: 1}, odd: {"no": 0, odd: 7}}
    root = ET.fromstring(picture.confusion_svg(matrix, "model on 13 rows"))
    assert root.tag.endswith("svg")
    texts = [t.text for t in root.iter() if t.tag.endswith("text")]
    assert {"5", "1", "0", "7", odd} <= set(texts)

    y = np.linspace(0, 10, 50)
    root = ET.fromstring(picture.residuals_svg(y, y + 0.5, "regression"))
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
