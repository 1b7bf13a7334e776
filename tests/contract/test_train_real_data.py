"""The train stage on data as users have it: Parquet, columns to leave out, a target to find,
few rows, estimators named by import path, several hosts."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import fastparquet
import joblib
import numpy as np
import pandas as pd
import pytest

from scripts.harness import failure_reason, run_all, run_stage, training_tree


def make_frame(n: int, seed: int, task: str = "classification") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    usage = rng.uniform(0, 10, n).round(3)
    plan = rng.choice(["basic", "gold", "family"], n).astype(object)
    score = usage + np.where(plan == "gold", 3.0, 0.0) + rng.normal(0, 1, n)
    frame = pd.DataFrame({
        # Numbers but for one in twenty: a column the trainer refuses unless left out.
        "customer_id": [str(100000 + i) if i % 20 else f"C{i}" for i in range(n)],
        "usage": usage, "plan": plan,
        "calls": rng.integers(0, 6, n).astype(float),
    })
    if task == "classification":
        frame["label"] = np.where(score > 6.5, "stay", "leave").astype(object)
    else:
        frame["label"] = (score * 10).round(3)
    return frame


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frame.parquet"
        fastparquet.write(str(path), frame, compression="SNAPPY", write_index=False)
        return path.read_bytes()


def metadata(base: Path) -> dict:
    return json.loads((base / "model" / "metadata.json").read_text())


def metric_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(("train:", "validation:"))]


FRAME = make_frame(240, seed=1)
CSV = FRAME.to_csv(index=False)
PARQUET = parquet_bytes(FRAME)
HEADERLESS = FRAME[["label", "usage", "customer_id", "plan", "calls"]].to_csv(index=False,
                                                                              header=False)

# name: (channels, hyperparameters, content types)
GOOD = {
    "csv": ({"train": {"data.csv": CSV}}, {"ignore_columns": "customer_id"}, None),
    # What Spark and Glue leave: part files without a suffix, _SUCCESS, .crc files.
    "spark parquet": ({"train": {"part-00000-1b2c.c000": PARQUET, "_SUCCESS": "",
                                 ".part-00000-1b2c.c000.crc": b"crc\x00\x01"}},
                      {"ignore_columns": "customer_id"}, None),
    "parquet content type": ({"train": {"data.parquet": PARQUET}},
                             {"ignore_columns": "customer_id"},
                             {"train": "application/x-parquet"}),
    "headerless ignore by index": ({"train": {"part-0": HEADERLESS}}, {"ignore_columns": "2"},
                                   None),
    "tiny": ({"train": {"d.csv": make_frame(12, seed=3).to_csv(index=False)}},
             {"ignore_columns": "customer_id"}, None),
    "typed once": ({"train": {"d.csv": CSV}},
                   {"model": "decision_tree", "max_depth": "3.0", "seed": "5.0",
                    "ignore_columns": "customer_id"}, None),
    "validation_fraction to the estimator": (
        {"train": {"d.csv": CSV}},
        {"validation_fraction": "0.3", "holdout_fraction": "0.25",
         "ignore_columns": "customer_id"}, None),
    "validation_fraction as the deprecated hold-out": (
        {"train": {"d.csv": CSV}},
        {"model": "random_forest", "n_estimators": "5", "validation_fraction": "0.25",
         "ignore_columns": "customer_id"}, None),
}


@pytest.fixture(scope="module")
def good_runs(tmp_path_factory):
    jobs = {}
    for key, (channels, hyperparameters, content_types) in GOOD.items():
        base = tmp_path_factory.mktemp(key.replace(" ", "-"))
        training_tree(base, channels, hyperparameters, content_types=content_types)
        jobs[key] = (base, [])
    return run_all("train", jobs)


def test_a_parquet_channel_trains_the_same_model_as_csv(good_runs):
    csv_base, csv_run = good_runs["csv"]
    assert csv_run.returncode == 0, csv_run.stderr[-3000:]
    for key in ("spark parquet", "parquet content type"):
        base, result = good_runs[key]
        assert result.returncode == 0, result.stderr[-3000:]
        assert "read 240 rows x 4 columns from 1 Parquet file(s)" in result.stderr
        assert metadata(base)["features"] == metadata(csv_base)["features"]
        assert metric_lines(result.stdout) == metric_lines(csv_run.stdout)
        model = joblib.load(base / "model" / "model.joblib")
        rows = FRAME.drop(columns=["label", "customer_id"]).head(30)
        assert model.predict(rows).tolist() == \
            joblib.load(csv_base / "model" / "model.joblib").predict(rows).tolist()


def test_markers_are_skipped_with_one_warning(good_runs):
    base, result = good_runs["spark parquet"]
    warnings = [line for line in result.stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, warnings
    assert "skipping 2 file(s)" in warnings[0]
    assert ".part-00000-1b2c.c000.crc" in warnings[0] and "_SUCCESS" in warnings[0]


def test_the_target_named_label_is_found_and_the_log_says_so(good_runs):
    base, result = good_runs["csv"]
    assert metadata(base)["target"] == "label"
    assert "target: 'label', the only column named target, label, class or y" in result.stderr


def test_ignored_columns_are_left_out_and_recorded_by_name(good_runs):
    base, _ = good_runs["csv"]
    meta = metadata(base)
    assert [f["name"] for f in meta["features"]] == ["usage", "plan", "calls"]
    assert meta["ignored_columns"] == ["customer_id"]
    assert meta["columns"] == [
        {"name": "customer_id", "role": "ignored"}, {"name": "usage", "role": "feature"},
        {"name": "plan", "role": "feature"}, {"name": "calls", "role": "feature"},
        {"name": "label", "role": "target"}]


def test_ignored_columns_of_headerless_data_are_recorded_by_position(good_runs):
    base, result = good_runs["headerless ignore by index"]
    assert result.returncode == 0, result.stderr[-3000:]
    meta = metadata(base)
    assert meta["header"] is False and meta["target"] == "column_0"
    assert meta["ignored_columns"] == ["column_2"]
    assert [c["role"] for c in meta["columns"]] == \
        ["target", "feature", "ignored", "feature", "feature"]
    assert [f["name"] for f in meta["features"]] == ["column_1", "column_3", "column_4"]


def test_twelve_rows_train_with_early_stopping_off(good_runs):
    base, result = good_runs["tiny"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert "early stopping off: its validation split (validation_fraction=0.1) needs at " \
        "least 11 rows for 2 classes, and there are 10 training rows" in result.stderr
    assert metadata(base)["params"]["early_stopping"] is False
    assert metadata(base)["training_rows"] == 10


def test_hyperparameters_are_typed_once_whole_floats_as_ints(good_runs):
    base, result = good_runs["typed once"]
    assert result.returncode == 0, result.stderr[-3000:]
    params = metadata(base)["params"]
    assert params["max_depth"] == 3 and params["random_state"] == 5
    tree = joblib.load(base / "model" / "model.joblib").steps[-1][1]
    assert tree.max_depth == 3 and tree.get_depth() <= 3


def test_validation_fraction_goes_to_an_estimator_that_has_it(good_runs):
    base, result = good_runs["validation_fraction to the estimator"]
    assert result.returncode == 0, result.stderr[-3000:]
    meta = metadata(base)
    assert meta["params"]["validation_fraction"] == 0.3
    assert meta["training_rows"] == 180  # holdout_fraction 0.25 of 240
    assert joblib.load(base / "model" / "model.joblib").steps[-1][1].validation_fraction == 0.3


def test_validation_fraction_is_the_holdout_for_other_estimators(good_runs):
    base, result = good_runs["validation_fraction as the deprecated hold-out"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert metadata(base)["training_rows"] == 180
    assert "validation_fraction" not in metadata(base)["params"]
    assert "this use is deprecated: name it holdout_fraction" in result.stderr


def test_evaluate_scores_headerless_test_data_with_the_ignored_column(good_runs, tmp_path):
    base, _ = good_runs["headerless ignore by index"]
    test = tmp_path / "processing" / "test"
    test.mkdir(parents=True)
    (test / "test.csv").write_text(HEADERLESS)
    result = run_stage("processing", tmp_path, [
        "evaluate", "--model-dir", str(base / "model"), "--test-dir", str(test),
        "--output-dir", str(tmp_path / "out"), "--bootstrap", "0"])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert 0.5 < report["binary_classification_metrics"]["accuracy"]["value"] <= 1.0


# -- failures ---------------------------------------------------------------------------------
TWO_TARGETS = FRAME.assign(y=FRAME["usage"]).to_csv(index=False)
CONTINUOUS = make_frame(120, seed=4, task="regression").to_csv(index=False)
TWO_ROWS = make_frame(2, seed=5).to_csv(index=False)

BAD = {
    "several target names": ({"train": {"d.csv": TWO_TARGETS}},
                             {"ignore_columns": "customer_id"}, None,
                             "the data has 2 columns that could be the target ('label', 'y'): "
                             "say which one with target=NAME"),
    "ignore an unknown column": ({"train": {"d.csv": CSV}}, {"ignore_columns": "cust_id"}, None,
                                 "hyperparameter 'ignore_columns' must be a column of the data "
                                 "(name or 0-based index), got 'cust_id'; did you mean "
                                 "'customer_id'? columns: customer_id, usage, plan, calls, "
                                 "label"),
    "ignore the target": ({"train": {"d.csv": CSV}},
                          {"target": "label", "ignore_columns": "customer_id,label"}, None,
                          "hyperparameter 'ignore_columns' must be columns other than the "
                          "target, got 'customer_id,label'; it names the target column "
                          "'label'"),
    "a stray word in an id column not ignored": (
        {"train": {"d.csv": CSV}}, {}, None, "column 'customer_id' holds numbers except"),
    "a classifier on a continuous target": (
        {"train": {"d.csv": CSV}}, {}, None, None),  # replaced below
    "a regressor on text labels": (
        {"train": {"d.csv": CSV}},
        {"model": "sklearn.linear_model.Ridge", "ignore_columns": "customer_id"}, None,
        "model sklearn.linear_model.Ridge is a regressor, but the task is classification: the "
        "target 'label' holds text labels (e.g. "),
    "two rows": ({"train": {"d.csv": TWO_ROWS}}, {"ignore_columns": "customer_id"}, None,
                 "only 2 training row(s): holding out a holdout_fraction of 0.2 needs at least "
                 "3 rows (one held out, two to fit); add rows or give a 'validation' channel"),
    "early stopping asked for on twelve rows": (
        {"train": {"d.csv": make_frame(12, seed=3).to_csv(index=False)}},
        {"early_stopping": "true", "ignore_columns": "customer_id"}, None,
        "hyperparameter 'early_stopping' turns on early stopping, but its validation split "
        "(validation_fraction=0.1) needs at least 11 rows for 2 classes, and there are 10 "
        "training rows; set early_stopping=False or add rows"),
    "a fraction for an int parameter": (
        {"train": {"d.csv": CSV}}, {"model": "random_forest", "n_estimators": "10.5"}, None,
        "hyperparameter 'n_estimators' must be an integer, got '10.5'"),
    "an unsupported content type": (
        {"train": {"d.csv": CSV}}, {}, {"train": "application/x-recordio-protobuf"},
        "channel 'train' has ContentType 'application/x-recordio-protobuf'; the built-in "
        "trainer reads CSV (text/csv) and Parquet (application/x-parquet)"),
}
BAD["a classifier on a continuous target"] = (
    {"train": {"d.csv": CONTINUOUS}},
    {"model": "sklearn.svm.SVC", "ignore_columns": "customer_id"}, None,
    "model sklearn.svm.SVC is a classifier, but the task is regression: the target 'label' "
    "holds 119 distinct numbers (e.g. ")


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    jobs = {}
    for key, (channels, hyperparameters, content_types, _) in BAD.items():
        base = tmp_path_factory.mktemp(key.replace(" ", "-"))
        training_tree(base, channels, hyperparameters, content_types=content_types)
        jobs[key] = (base, [])
    return run_all("train", jobs)


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_mistake_fails_with_a_reason_that_says_what_to_do(bad_runs, case):
    base, result = bad_runs[case]
    assert result.returncode == 1, result.stderr[-3000:]
    reason = failure_reason(base)
    assert reason.count("\n") == 1 and len(reason) <= 1024
    assert reason.startswith(BAD[case][3]), reason
    assert not (base / "model" / "model.joblib").exists()
