"""The train stage as a process, on /opt/ml trees laid out the way SageMaker lays them out."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from scripts.harness import failure_reason, run_all, run_stage, training_tree
from sklearn_byoc.train.estimators import MODELS

METRIC_LINE = re.compile(r"^(train|validation):(\w+)=([-+0-9.eE]+);$")


# -- data ------------------------------------------------------------------------------------
def make_frame(n: int, task: str, seed: int) -> pd.DataFrame:
    """Numeric and text features, with missing cells in both; the target last."""
    rng = np.random.default_rng(seed)
    usage = rng.uniform(0, 10, n).round(3)
    calls = rng.integers(0, 6, n).astype(float)
    plan = rng.choice(["basic", "gold", "family"], n).astype(object)
    score = usage - 2 * calls + np.where(plan == "gold", 3.0, 0.0)
    calls[rng.random(n) < 0.1] = np.nan
    plan[rng.random(n) < 0.1] = None
    frame = pd.DataFrame({"usage": usage, "calls": calls, "plan": plan})
    if task == "classification":
        frame["y"] = np.where(score + rng.normal(0, 1, n) > 1.0, "stay", "leave")
    else:
        frame["y"] = (score * 10 + rng.normal(0, 1, n)).round(3)
    return frame


def csv_text(frame: pd.DataFrame, header: bool = True) -> str:
    return frame.to_csv(index=False, header=header)


def metric_lines(stdout: str) -> list[tuple[str, str, float]]:
    found = []
    for line in stdout.splitlines():
        match = METRIC_LINE.match(line.strip())
        if match:
            found.append((match.group(1), match.group(2), float(match.group(3))))
    return found


def raw_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Feature rows as a user holds them: floats, text and missing cells."""
    X = frame.drop(columns=["y"]).copy()
    X["plan"] = X["plan"].astype(object).where(X["plan"].notna(), np.nan)
    return X


def load(base: Path):
    model = joblib.load(base / "model" / "model.joblib")
    metadata = json.loads((base / "model" / "metadata.json").read_text())
    return model, metadata


# -- every built-in model, both tasks ---------------------------------------------------------
@pytest.fixture(scope="module")
def model_runs(tmp_path_factory):
    jobs, frames = {}, {}
    for task in ("classification", "regression"):
        frames[task] = make_frame(160, task, seed=1)
        for name in MODELS:
            base = tmp_path_factory.mktemp(f"{name}-{task}")
            training_tree(base, {"train": {"data.csv": csv_text(frames[task])}},
                          {"model": name, "target": "y"}, content_types={"train": "text/csv"})
            jobs[(name, task)] = (base, ["train"])  # SageMaker passes "train" as the command
    return {key: (base, result, frames[key[1]])
            for key, (base, result) in run_all("train", jobs).items()}


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_built_in_model_trains(model_runs, name, task):
    base, result, frame = model_runs[(name, task)]
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (base / "output" / "failure").exists()
    model, metadata = load(base)
    assert metadata["model"] == name
    assert metadata["task"] == task
    # estimators.MODELS names each model's classes (tests/unit/test_estimators.py pins them).
    choice = MODELS[name]
    expected = (choice.classifier if task == "classification" else choice.regressor)
    expected_class = expected.rpartition(".")[2]
    assert metadata["estimator"].endswith("." + expected_class)
    assert type(model.steps[-1][1]).__name__ == expected_class
    assert metadata["target"] == "y"
    assert [f["name"] for f in metadata["features"]] == ["usage", "calls", "plan"]
    assert {f["name"]: f["kind"] for f in metadata["features"]} == \
        {"usage": "numeric", "calls": "numeric", "plan": "categorical"}
    # no validation channel: 20 % held out
    assert metadata["training_rows"] == 160 - 32

    # The saved pipeline takes raw rows: text, missing cells, an unseen category.
    X = raw_rows(frame.head(20))
    X.loc[X.index[0], "plan"] = "platinum"
    X.loc[X.index[1], ["usage", "calls", "plan"]] = [np.nan, np.nan, np.nan]
    predictions = model.predict(X)
    assert len(predictions) == 20
    if task == "classification":
        assert metadata["classes"] == ["leave", "stay"]
        assert set(predictions) <= {"leave", "stay"}
        assert model.predict_proba(X).shape == (20, 2)
    else:
        assert metadata["classes"] is None
        assert np.isfinite(predictions.astype(float)).all()

    # Metric lines on stdout, the objective last.
    lines = metric_lines(result.stdout)
    objective = "accuracy" if task == "classification" else "rmse"
    assert lines[-1][:2] == ("validation", objective)
    names = {(split, metric) for split, metric, _ in lines}
    expected = (["accuracy", "balanced_accuracy", "precision", "recall", "f1"]
                if task == "classification" else ["mse", "rmse", "mae", "r2"])
    for split in ("train", "validation"):
        for metric in expected:
            assert (split, metric) in names
    regex = rf"validation:{objective}=([-+0-9.eE]+);"
    assert float(re.findall(regex, result.stdout)[-1]) == lines[-1][2]

    # metrics.json says the same as stdout.
    saved = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert saved["objective"] == f"validation:{objective}"
    for split, metric, value in lines:
        assert saved[split][metric] == pytest.approx(value, abs=1e-6)
        assert metadata["metrics"][split][metric] == pytest.approx(value, abs=1e-6)


# -- channels and layouts ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def layout_runs(tmp_path_factory):
    classification = make_frame(200, "classification", seed=2)
    valid_classification = make_frame(60, "classification", seed=3)
    regression = make_frame(150, "regression", seed=4)
    valid_regression = make_frame(50, "regression", seed=5)
    # SageMaker's built-in algorithm layout: no header, label first, 0/1 labels.
    label_first = classification[["y", "usage", "calls"]].fillna({"calls": 0.0}).copy()
    label_first["y"] = (label_first["y"] == "stay").astype(int)
    cases = {
        "headerless": ({"training": {"part-00000.csv": csv_text(label_first, header=False)}},
                       {}),
        "validation": ({"train": {"data.csv": csv_text(classification)},
                        "validation": {"data.csv": csv_text(valid_classification)}},
                       {"target": "y"}),
        "regression-validation": ({"train": {"data.csv": csv_text(regression)},
                                   "validation": {"v.csv": csv_text(valid_regression)}},
                                  {"target": "y", "model": "linear"}),
        "typed": ({"train": {"data.csv": csv_text(classification)}},
                  {"model": "random_forest", "n_estimators": "7", "max_depth": "3",
                   "target": "y"}),
        # what a framework estimator and a tuning job send (without sagemaker_program,
        # which asks for the user's own script)
        "framework": ({"train": {"data.csv": csv_text(classification)}},
                      {"model": "\"decision_tree\"", "target": "\"y\"", "max_depth": "4",
                       "sagemaker_container_log_level": "20",
                       "sagemaker_job_name": "\"tuning-job-001-abc\"",
                       "sagemaker_region": "\"us-east-1\"",
                       "_tuning_objective_metric": "validation:f1"}),
    }
    jobs = {}
    for key, (channels, hyperparameters) in cases.items():
        base = tmp_path_factory.mktemp(key)
        training_tree(base, channels, hyperparameters)
        jobs[key] = (base, [])
    # A local run: the channel folder and nothing else, no config file at all.
    bare = tmp_path_factory.mktemp("bare")
    (bare / "input" / "data" / "train").mkdir(parents=True)
    (bare / "input" / "data" / "train" / "data.csv").write_text(
        csv_text(classification[["y", "usage", "calls", "plan"]]))
    jobs["bare"] = (bare, [])
    frames = {"validation": valid_classification, "regression-validation": valid_regression,
              "label_first": label_first}
    return run_all("train", jobs), frames


def test_headerless_label_first_channel_named_training_with_empty_hyperparameters(layout_runs):
    runs, frames = layout_runs
    base, result = runs["headerless"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((base / "input" / "config" / "hyperparameters.json").read_text()) == {}
    model, metadata = load(base)
    assert metadata["header"] is False
    assert metadata["target"] == "column_0"
    assert [f["name"] for f in metadata["features"]] == ["column_1", "column_2"]
    assert metadata["task"] == "classification"
    assert metadata["classes"] == [0, 1]
    assert metadata["training_rows"] == 160
    assert metric_lines(result.stdout)[-1][:2] == ("validation", "accuracy")
    rows = frames["label_first"].drop(columns=["y"]).head(5)
    rows.columns = ["column_1", "column_2"]
    assert set(model.predict(rows)) <= {0, 1}


def test_config_files_may_be_absent(layout_runs):
    runs, _ = layout_runs
    base, result = runs["bare"]
    assert not (base / "input" / "config").exists()
    assert result.returncode == 0, result.stderr[-3000:]
    _, metadata = load(base)
    assert metadata["target"] == "y"  # the first column by default
    assert metadata["model"] == "gradient_boosting"
    assert (base / "output" / "data" / "metrics.json").exists()


def test_validation_channel_is_used_for_validation_metrics(layout_runs):
    runs, frames = layout_runs
    base, result = runs["validation"]
    assert result.returncode == 0, result.stderr[-3000:]
    model, metadata = load(base)
    assert metadata["training_rows"] == 200  # nothing held out
    valid = frames["validation"]
    predicted = model.predict(raw_rows(valid))
    accuracy = float(np.mean(predicted == valid["y"].to_numpy()))
    printed = {(s, m): v for s, m, v in metric_lines(result.stdout)}
    assert printed[("validation", "accuracy")] == pytest.approx(accuracy, abs=1e-6)
    positive = valid["y"].to_numpy() == "stay"
    hits = predicted == "stay"
    recall = (hits & positive).sum() / positive.sum()
    assert printed[("validation", "recall")] == pytest.approx(recall, abs=1e-6)


def test_regression_validation_metrics_match_the_saved_model(layout_runs):
    runs, frames = layout_runs
    base, result = runs["regression-validation"]
    assert result.returncode == 0, result.stderr[-3000:]
    model, metadata = load(base)
    assert metadata["task"] == "regression"
    assert metadata["training_rows"] == 150
    valid = frames["regression-validation"]
    errors = model.predict(raw_rows(valid)) - valid["y"].to_numpy()
    printed = {(s, m): v for s, m, v in metric_lines(result.stdout)}
    assert printed[("validation", "rmse")] == \
        pytest.approx(math.sqrt(np.mean(errors ** 2)), abs=1e-5)
    assert printed[("validation", "mae")] == pytest.approx(np.mean(np.abs(errors)), abs=1e-5)
    assert metric_lines(result.stdout)[-1][:2] == ("validation", "rmse")


def test_estimator_params_are_typed_from_strings(layout_runs):
    runs, _ = layout_runs
    base, result = runs["typed"]
    assert result.returncode == 0, result.stderr[-3000:]
    model, metadata = load(base)
    params = metadata["params"]
    assert params["n_estimators"] == 7 and type(params["n_estimators"]) is int
    assert params["max_depth"] == 3 and type(params["max_depth"]) is int
    forest = model.steps[-1][1]
    assert forest.n_estimators == 7 and len(forest.estimators_) == 7
    assert forest.max_depth == 3
    assert max(tree.get_depth() for tree in forest.estimators_) <= 3


def test_framework_and_tuning_hyperparameters(layout_runs):
    runs, _ = layout_runs
    base, result = runs["framework"]
    assert result.returncode == 0, result.stderr[-3000:]
    model, metadata = load(base)
    assert metadata["model"] == "decision_tree"
    assert metadata["target"] == "y"
    assert metadata["params"]["max_depth"] == 4
    assert not any(key.startswith(("sagemaker_", "_")) for key in metadata["params"])
    # the tuning objective is printed last, and matches the documented regex
    lines = metric_lines(result.stdout)
    assert lines[-1][:2] == ("validation", "f1")
    assert re.findall(r"validation:f1=([-+0-9.eE]+);", result.stdout)[-1] == \
        f"{lines[-1][2]:.6f}"
    saved = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert saved["objective"] == "validation:f1"


# -- bad input --------------------------------------------------------------------------------
GOOD = csv_text(make_frame(60, "classification", seed=6))

BAD = {
    "no channel": ({}, {}, None, ["no input channel", "input/data"]),
    "empty channel": ({"train": {}}, {}, None, ["input/data/train", "no data files"]),
    "only empty files": ({"train": {"part-0.csv": ""}}, {}, None, ["only empty files"]),
    "unknown model": ({"train": {"d.csv": GOOD}}, {"model": "random_forrest"}, None,
                      ["'model'", "random_forrest", "did you mean 'random_forest'"]),
    "badly typed estimator param": ({"train": {"d.csv": GOOD}},
                                    {"model": "random_forest", "n_estimators": "many"}, None,
                                    ["'n_estimators'", "integer", "'many'"]),
    "badly typed trainer setting": ({"train": {"d.csv": GOOD}},
                                    {"validation_fraction": "half"}, None,
                                    ["'validation_fraction'", "number", "'half'"]),
    "misspelt param": ({"train": {"d.csv": GOOD}},
                       {"model": "knn", "n_neighbours": "3"}, None,
                       ["'n_neighbours'", "did you mean 'n_neighbors'"]),
    "target missing": ({"train": {"d.csv": GOOD}}, {"target": "churned"}, None,
                       ["'target'", "'churned'", "usage, calls, plan, y"]),
    "not utf-8": ({"train": {"latin.csv": "usage,plan,y\n1,caf\xe9,a\n2,th\xe9,b\n"
                             .encode("latin-1")}}, {}, None, ["latin.csv", "UTF-8"]),
    "not csv": ({"train": {"data.csv.gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\xff\xfe" * 20}},
                {}, None, ["data.csv.gz", "not valid CSV"]),
    "unsupported content type": ({"train": {"d.csv": GOOD}}, {},
                                 {"train": "application/x-parquet"},
                                 ["'train'", "application/x-parquet", "CSV"]),
    "unknown tuning objective": ({"train": {"d.csv": GOOD}},
                                 {"target": "y", "_tuning_objective_metric": "validation:mape"},
                                 None, ["validation:mape", "validation:accuracy"]),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    jobs = {}
    for key, (channels, hyperparameters, content_types, _) in BAD.items():
        base = tmp_path_factory.mktemp(key.replace(" ", "-"))
        training_tree(base, channels, hyperparameters, content_types=content_types)
        jobs[key] = (base, [])
    bad_json = tmp_path_factory.mktemp("bad-json")
    training_tree(bad_json, {"train": {"d.csv": GOOD}}, {})
    (bad_json / "input" / "config" / "hyperparameters.json").write_text('{"model": "knn",}')
    jobs["hyperparameters not json"] = (bad_json, [])
    return run_all("train", jobs)


@pytest.mark.parametrize("case", sorted(BAD) + ["hyperparameters not json"])
def test_bad_input_fails_with_a_reason(bad_runs, case):
    base, result = bad_runs[case]
    words = BAD[case][3] if case in BAD else ["hyperparameters.json", "not valid JSON"]
    assert result.returncode != 0
    reason = failure_reason(base)
    assert reason.endswith("\n") and len(reason.splitlines()) == 1
    assert len(reason) <= 1024 or case == "misspelt param"
    for word in words:
        assert word in reason, f"{word!r} not in {reason!r}"
    assert "Traceback" not in reason and "internal error" not in reason
    assert not (base / "model" / "model.joblib").exists()
    # the log ends with the same reason
    assert result.stderr.rstrip().splitlines()[-1].endswith(reason.strip())


def test_rerun_after_a_fix_clears_the_failure(bad_runs):
    base, _ = bad_runs["unknown model"]
    assert (base / "output" / "failure").exists()
    (base / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"model": "decision_tree", "target": "y"}))
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (base / "output" / "failure").exists()
    assert (base / "model" / "model.joblib").exists()


def test_unexpected_arguments_are_refused(tmp_path):
    training_tree(tmp_path, {"train": {"d.csv": GOOD}}, {})
    result = run_stage("train", tmp_path, ["--epochs", "3"])
    assert result.returncode != 0
    assert "--epochs" in result.stderr
