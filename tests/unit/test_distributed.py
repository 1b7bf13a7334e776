"""The trainer on several hosts, in one process: every host a store of its own
(distributed.LocalHosts), the same steps the Dask cluster runs."""
import json

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.metrics import classification_metrics, regression_metrics
from sklearn_byoc.common.tables import Table
from sklearn_byoc.common.tables.read import read_folder
from sklearn_byoc.train import distributed as d, host_scores
from sklearn_byoc.train.hyperparameters import read_settings
from sklearn_byoc.train.leader import train_on_hosts

HOSTS = ("algo-1", "algo-2", "algo-3")


def make_rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue", "grey"], size=n)
    score = a + 0.5 * b + (colour == "red") * 1.5 + rng.normal(scale=0.3, size=n)
    label = np.where(score > 1.2, "high", np.where(score > -0.2, "mid", "low"))
    frame = pd.DataFrame({"a": a, "b": b, "colour": colour, "label": label,
                          "amount": score * 10 + rng.normal(size=n)})
    frame.loc[frame.sample(frac=0.05, random_state=seed).index, "a"] = np.nan
    frame.loc[frame.sample(frac=0.02, random_state=seed + 1).index, "colour"] = np.nan
    return frame


def hosts_with(tmp_path, frames: dict[str, pd.DataFrame]) -> d.LocalHosts:
    """Each host reads its own CSV file; a host given an empty frame reads no rows."""
    hosts = d.LocalHosts(frames)
    for host, frame in frames.items():
        folder = tmp_path / host
        folder.mkdir(parents=True)
        if len(frame):
            frame.to_csv(folder / "part.csv", index=False)

            def read(role, folder=folder):
                return read_folder(folder, what=f"channel {role}")
        else:
            def read(role, columns=list(frame.columns)):
                return Table(pd.DataFrame({c: pd.Series(dtype=object) for c in columns}),
                             has_header=True, all_columns=columns)
        hosts.stores[host]["read"] = read
    return hosts


def split_rows(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    size = -(-len(frame) // n)
    return [frame.iloc[i * size:(i + 1) * size] for i in range(n)]


def run(tmp_path, frames, hyperparameters, budget=None):
    hosts = hosts_with(tmp_path / "hosts", frames)
    paths = Paths(tmp_path / "ml")
    settings = read_settings(hyperparameters)
    result = train_on_hosts(paths, settings, hosts, has_validation=False, budget=budget)
    return paths, result, hosts


# -- the pieces ---------------------------------------------------------------------------------
def test_a_row_is_held_out_whichever_host_reads_it():
    frame = make_rows(5000).drop(columns=["amount"])
    kinds = {"a": "numeric", "b": "numeric", "colour": "categorical"}
    X, y = frame.drop(columns=["label"]), frame["label"]
    whole = d.heldout_mask(X, y, kinds, 0.2, seed=7)
    assert 0.18 < whole.mean() < 0.22
    shuffled = np.random.default_rng(1).permutation(len(X))
    again = d.heldout_mask(X.iloc[shuffled], y.iloc[shuffled], kinds, 0.2, seed=7)
    assert (again == whole[shuffled]).all()
    # An integer column read as int64 on one host and float64 on another: same rows.
    as_int = X.assign(b=(X["b"] * 100).round())
    as_float = as_int.assign(b=as_int["b"].astype("float64"))
    assert (d.heldout_mask(as_int.assign(b=as_int["b"].astype("int64")), y, kinds, 0.2, 7)
            == d.heldout_mask(as_float, y, kinds, 0.2, 7)).all()
    assert (d.heldout_mask(X, y, kinds, 0.2, seed=8) != whole).any()


@pytest.mark.parametrize("n, rows, expected", [
    (100, {"h1": 10, "h2": 10, "h3": 10}, {"h1": 34, "h2": 33, "h3": 33}),
    (10, {"h1": 900, "h2": 100, "h3": 0}, {"h1": 9, "h2": 1, "h3": 0}),
    (3, {"h1": 1, "h2": 1, "h3": 1, "h4": 1}, {"h1": 1, "h2": 1, "h3": 1, "h4": 0}),
])
def test_trees_are_shared_in_proportion_to_rows(n, rows, expected):
    assert d.forest_shares(n, rows) == expected


@pytest.mark.parametrize("total, per_row, budget, asked, expected", [
    (10_000_000, 200.0, 4 * 2**30, None, 5_368_709),
    (1_000, 200.0, 4 * 2**30, None, 1_000),
    (10_000_000, 200.0, 2**20, None, 10_000),  # never fewer than MIN_SAMPLE_ROWS
    (10_000_000, 200.0, 4 * 2**30, 50_000, 50_000),
    (10_000_000, 200.0, None, None, 10_000_000),
])
def test_the_sample_is_what_the_budget_holds_or_what_was_asked(total, per_row, budget, asked,
                                                                expected):
    assert d.sample_size(total, per_row, budget, asked) == expected


def test_summed_scores_give_the_metrics_one_host_computes():
    rng = np.random.default_rng(3)
    classes = ["a", "b", "c"]
    y = rng.choice(classes, size=3000, p=[0.5, 0.3, 0.2])
    proba = rng.dirichlet([1, 1, 1], size=3000)
    proba[np.arange(3000), pd.Series(y).map({"a": 0, "b": 1, "c": 2})] += 0.8
    proba /= proba.sum(axis=1, keepdims=True)

    class Fixed:
        def __init__(self, p):
            self.p = p

        def predict_proba(self, X):
            return self.p[X["i"].to_numpy()]

    parts = []
    for rows in np.array_split(np.arange(3000), 3):
        store = {"X_val": pd.DataFrame({"i": rows}), "y_val": pd.Series(y[rows], dtype=object)}
        parts.append(host_scores.score_share(store, Fixed(proba), "classification", classes,
                                   "validation", None, 0))
    combined = host_scores.combine_scores(parts, "classification", classes)
    expected = classification_metrics(y, np.array(classes)[proba.argmax(axis=1)], proba,
                                      classes)
    assert set(combined) == set(expected)
    for name in expected:
        tolerance = 1e-3 if name == "auc" else 1e-9
        assert combined[name] == pytest.approx(expected[name], abs=tolerance), name


def test_summed_regression_scores_give_the_metrics_one_host_computes():
    rng = np.random.default_rng(4)
    truth, predicted = rng.normal(size=999), rng.normal(size=999)

    class Fixed:
        def predict(self, X):
            return predicted[X["i"].to_numpy()]

    parts = [host_scores.score_share({"X_val": pd.DataFrame({"i": rows}), "y_val": pd.Series(truth[rows])},
                           Fixed(), "regression", None, "validation", None, 0)
             for rows in np.array_split(np.arange(999), 3)]
    combined = host_scores.combine_scores(parts + [{"rows": 0}], "regression", None)
    expected = regression_metrics(truth, predicted)
    assert combined == pytest.approx(expected)


# -- whole jobs ---------------------------------------------------------------------------------
def test_a_forest_on_three_hosts_is_one_forest_of_every_hosts_trees(tmp_path):
    frame = make_rows(6000).drop(columns=["amount"])
    frames = dict(zip(HOSTS, split_rows(frame, 3)))
    # One host without the class "high": its trees still give three columns.
    frames["algo-3"] = frames["algo-3"][frames["algo-3"]["label"] != "high"]
    paths, result, _ = run(tmp_path, frames, {"model": "random_forest", "n_estimators": "30",
                                              "target": "label"})
    pipeline = joblib.load(paths.model_dir / "model.joblib")
    forest = pipeline.named_steps["model"]
    assert isinstance(forest, RandomForestClassifier)
    assert len(forest.estimators_) == forest.n_estimators == 30
    assert list(forest.classes_) == ["high", "low", "mid"]
    proba = pipeline.predict_proba(frame.drop(columns=["label"]).head(50))
    assert proba.shape == (50, 3) and np.allclose(proba.sum(axis=1), 1)
    metadata = json.loads((paths.model_dir / "metadata.json").read_text())
    assert metadata["hosts"]["count"] == 3 and metadata["hosts"]["fit"] == "trees per host"
    assert sum(metadata["hosts"]["trees"].values()) == 30
    assert set(result.metrics["validation"]) == {"accuracy", "balanced_accuracy", "precision",
                                                 "recall", "f1", "auc", "log_loss"}
    # Within a few points of one forest of the same size fitted on all the rows.
    X, y = frame.drop(columns=["label"]), frame["label"]
    held = d.heldout_mask(X, y, {"a": "numeric", "b": "numeric", "colour": "categorical"},
                          0.2, 42)
    from sklearn_byoc.train.trainer import build_pipeline

    one = build_pipeline(RandomForestClassifier(n_estimators=30, random_state=0), X,
                         {"a": "numeric", "b": "numeric", "colour": "categorical"}, scale=False)
    one.fit(X[~held], y[~held])
    single = float((one.predict(X[held]) == y[held]).mean())
    assert result.metrics["validation"]["accuracy"] == pytest.approx(single, abs=0.04)
    assert result.metric_lines[-1].startswith("validation:accuracy=")


def test_an_incremental_model_visits_every_host_for_each_epoch(tmp_path, caplog):
    frame = make_rows(4000).drop(columns=["amount"])
    frames = dict(zip(HOSTS, split_rows(frame, 3)))
    frames["algo-2"] = frames["algo-2"].iloc[:0]  # a host with no rows is a valid worker
    caplog.set_level("INFO", logger="train")
    paths, result, _ = run(tmp_path, frames, {"model": "sgd", "epochs": "3", "target": "label"})
    metadata = json.loads((paths.model_dir / "metadata.json").read_text())
    assert metadata["hosts"] == {"count": 3, "rows": metadata["training_rows"],
                                 "fit": "partial_fit over the hosts", "epochs": 3}
    assert result.metrics["validation"]["accuracy"] > 0.7
    assert "progress: passes over a host's rows done: 9 of 9" in caplog.text


def test_a_model_without_a_distributed_form_fits_on_a_sample_of_every_host(tmp_path, caplog):
    frame = make_rows(30_000)
    frames = dict(zip(HOSTS, split_rows(frame, 3)))
    caplog.set_level("INFO", logger="train")
    paths, result, _ = run(tmp_path, frames, {"target": "amount", "sample_rows": "12000",
                                              "max_iter": "30"})
    metadata = json.loads((paths.model_dir / "metadata.json").read_text())
    hosts = metadata["hosts"]
    assert hosts["fit"] == "sample on the leader"
    assert 11_000 < hosts["sample_rows"] < 13_000
    assert hosts["sample_share"] == pytest.approx(hosts["sample_rows"] / hosts["rows"], abs=1e-5)
    assert metadata["task"] == "regression" and result.metrics["validation"]["r2"] > 0.8
    assert f"sample of {hosts['sample_rows']} rows" in caplog.text


def test_hosts_that_disagree_on_the_columns_fail_naming_the_host(tmp_path):
    frame = make_rows(600).drop(columns=["amount"])
    frames = dict(zip(HOSTS, split_rows(frame, 3)))
    frames["algo-2"] = frames["algo-2"].rename(columns={"b": "B"})
    with pytest.raises(UserError, match="algo-2 read has the columns"):
        run(tmp_path, frames, {"model": "random_forest", "target": "label"})


def test_a_date_column_is_a_date_feature_on_every_host(tmp_path):
    frame = make_rows(600).drop(columns=["amount"])
    frame["seen"] = (pd.Timestamp("2024-03-01") + pd.to_timedelta(np.arange(600) * 7, unit="h")
                     ).strftime("%Y-%m-%dT%H:%M:%S+01:00")
    frame.loc[::50, "seen"] = ""
    # One host's share holds only dates at midnight: the hour comes from the others.
    frame.loc[:199, "seen"] = [f"2024-03-{1 + i % 28:02d}" for i in range(200)]
    paths, result, _ = run(tmp_path, dict(zip(HOSTS, split_rows(frame, 3))),
                           {"model": "random_forest", "target": "label", "n_estimators": 6})
    seen = next(f for f in result.metadata.features if f.name == "seen")
    assert seen.kind == "date" and "hour" in seen.parts
    pipeline = joblib.load(paths.model_dir / "model.joblib")
    assert [c for c in pipeline.feature_names_in_ if c.startswith("seen")] == [
        f"seen__{p}" for p in ["year", "month", "day", "day_of_week", "day_of_year", "hour",
                               "days_since_epoch"]]


def test_no_rows_on_any_host_fails_in_one_line(tmp_path):
    empty = make_rows(10).iloc[:0]
    with pytest.raises(UserError, match="no host read any training rows"):
        run(tmp_path, {h: empty for h in HOSTS}, {})


def test_serve_processing_and_a_one_host_job_never_import_dask():
    """Dask is train's alone, and only for a job on several instances: serve's cold start and
    processing do not pay for importing it."""
    import subprocess
    import sys

    code = ("import sys; import sklearn_byoc.serve.app, sklearn_byoc.serve.cli, "
            "sklearn_byoc.processing.cli, sklearn_byoc.train.cli, sklearn_byoc.train.trainer, "
            "sklearn_byoc.train.leader; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=str(__import__("pathlib").Path(__file__)
                                                 .resolve().parents[2]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_column_that_identifies_rows_on_every_host_is_left_out(tmp_path):
    frame = make_rows(3000).drop(columns=["amount"])
    frame.insert(0, "order_id", [f"o-{i:06d}" for i in range(len(frame))])
    frames = dict(zip(HOSTS, split_rows(frame, 3)))
    paths, _, _ = run(tmp_path, frames, {"model": "random_forest", "n_estimators": "6",
                                         "target": "label"})
    metadata = json.loads((paths.model_dir / "metadata.json").read_text())
    assert metadata["ignored_columns"] == ["order_id"]
    assert "order_id" not in [f["name"] for f in metadata["features"]]
