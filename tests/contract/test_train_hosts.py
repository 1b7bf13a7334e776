"""A training job on several instances: one real ``train`` process per host, each with its
own /opt/ml tree, resourceconfig.json and name resolution (scripts/hosts.py), Dask between
them over loopback addresses."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from scripts.hosts import Job, can_cap_memory, can_run, host_names

pytestmark = [pytest.mark.slow, pytest.mark.serial,
              pytest.mark.skipif(can_run() is not None, reason=str(can_run()))]
HOSTS = host_names(3)
# Every host exits within this bound after one of them is lost (the README promises 90 s).
LOST_BOUND = 90


def rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=n), rng.normal(size=n), rng.uniform(0, 10, n)
    colour = rng.choice(["red", "green", "blue", "grey"], size=n)
    score = a + 0.5 * b + (colour == "red") * 1.5 + 0.1 * c + rng.normal(scale=0.3, size=n)
    label = np.where(score > 1.6, "high", np.where(score > 0.2, "mid", "low"))
    return pd.DataFrame({"label": label, "a": a.round(4), "b": b.round(4), "c": c.round(3),
                         "colour": colour})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hosts-data")
    rows(30_000).to_csv(folder / "orders.csv", index=False)
    return folder / "orders.csv"


def replicated(*files: Path) -> dict:
    return {"train": {host: list(files) for host in HOSTS}}


def run(job: Job, timeout: float = 240, **start) -> dict:
    job.start(**start)
    return job.wait(timeout)


def show(job: Job) -> str:
    return "\n".join(f"== {h.name}: {h.failure}\n{h.output()[-2000:]}" for h in job.hosts)


def test_three_hosts_train_one_forest_and_only_the_first_writes(tmp_path, data):
    job = Job.lay_out(tmp_path, 3, {"model": "random_forest", "n_estimators": "24",
                                    "target": "label"}, replicated(data))
    codes = run(job)
    assert codes == {h: 0 for h in HOSTS}, show(job)
    leader = job.host("algo-1")
    forest = joblib.load(leader.base / "model" / "model.joblib").named_steps["model"]
    assert len(forest.estimators_) == 24 and list(forest.classes_) == ["high", "low", "mid"]
    metadata = json.loads((leader.base / "model" / "metadata.json").read_text())
    assert metadata["hosts"]["count"] == 3 and sum(metadata["hosts"]["trees"].values()) == 24
    assert metadata["hosts"]["rows"] + 0 == metadata["training_rows"] > 20_000
    assert "validation:accuracy=" in leader.output()
    for host in job.hosts:
        log = host.output()
        assert f"this is {host.name}, one of 3 instances" in log
        # Each host read its own third of the one file, never the whole of it.
        read = int(log.split("train INFO read ", 1)[1].split(" rows", 1)[0])
        assert 9_000 < read < 11_000, log
        if host.name != "algo-1":
            assert "validation:accuracy" not in log
            for folder in ("model", "output/data"):
                path = host.base / folder
                assert not path.exists() or not any(path.iterdir())
            assert not (host.base / "output" / "failure").exists()


def test_sharded_hosts_read_their_own_objects_and_a_host_without_any_still_serves(tmp_path):
    first, second = tmp_path / "part-0.csv", tmp_path / "part-1.csv"
    rows(6000, seed=1).to_csv(first, index=False)
    rows(4000, seed=2).to_csv(second, index=False)
    job = Job.lay_out(tmp_path / "job", 3, {"model": "sgd", "epochs": "2", "target": "label"},
                      {"train": {"algo-1": [first], "algo-2": [second], "algo-3": []}},
                      distribution="ShardedByS3Key")
    codes = run(job)
    assert codes == {h: 0 for h in HOSTS}, show(job)
    log = job.host("algo-1").output()
    assert "10000 rows on 3 hosts (algo-1: 6000, algo-2: 4000, algo-3: 0)" in log
    assert "progress: passes over a host's rows done: 6 of 6" in log
    assert "holds no data files on this host: it reads no rows" in job.host("algo-3").output()


def test_parquet_without_a_distribution_type_is_split_by_row_groups(tmp_path):
    import fastparquet

    path = tmp_path / "part-00000.snappy.parquet"
    fastparquet.write(str(path), rows(9000, seed=3), row_group_offsets=3000 // 2,
                      compression="SNAPPY")
    job = Job.lay_out(tmp_path / "job", 3, {"target": "label", "sample_rows": "3000",
                                            "max_iter": "20"},
                      replicated(path), distribution=None)  # as SDK v3's local mode writes it
    codes = run(job)
    assert codes == {h: 0 for h in HOSTS}, show(job)
    log = job.host("algo-1").output()
    assert "9000 rows on 3 hosts (algo-1: 3000, algo-2: 3000, algo-3: 3000)" in log
    metadata = json.loads((job.host("algo-1").base / "model" / "metadata.json").read_text())
    assert metadata["hosts"]["fit"] == "sample on the leader"
    assert 2500 < metadata["hosts"]["sample_rows"] < 3500


@pytest.fixture(scope="module")
def long_job_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hosts-long")
    rows(60_000, seed=4).to_csv(folder / "orders.csv", index=False)
    return folder / "orders.csv"


def fitting_job(tmp_path, data) -> Job:
    """A forest job that fits long enough to be interrupted while it fits."""
    job = Job.lay_out(tmp_path, 3, {"model": "random_forest", "n_estimators": "3000",
                                    "target": "label"}, replicated(data))
    job.start()
    assert job.wait_for_line("algo-1", "fitting 3000 trees", 120), show(job)
    time.sleep(1)
    return job


def test_a_host_killed_mid_job_fails_every_host_naming_it(tmp_path, long_job_data):
    job = fitting_job(tmp_path, long_job_data)
    killed = time.monotonic()
    job.signal("algo-2", signal.SIGKILL)
    codes = job.wait(LOST_BOUND)
    took = time.monotonic() - killed
    assert codes["algo-2"] == -signal.SIGKILL
    assert codes["algo-1"] not in (0, None) and codes["algo-3"] not in (0, None), show(job)
    assert took < LOST_BOUND
    assert job.host("algo-1").failure.startswith("instance algo-2 left the job before it ended")
    assert job.host("algo-3").failure.startswith(
        "the job failed on algo-1: instance algo-2 left the job before it ended"), show(job)
    assert not (job.host("algo-1").base / "model" / "model.joblib").exists()


def test_sigterm_on_one_host_stops_every_host(tmp_path, long_job_data):
    job = fitting_job(tmp_path, long_job_data)
    job.signal("algo-3", signal.SIGTERM)
    codes = job.wait(LOST_BOUND)
    assert all(code not in (0, None) for code in codes.values()), (codes, show(job))
    assert job.host("algo-3").failure.startswith("stopped by SIGTERM"), show(job)
    assert "algo-3" in job.host("algo-1").failure
    assert "algo-3" in job.host("algo-2").failure


def test_a_host_that_never_joins_fails_the_job_naming_it(tmp_path, data):
    job = Job.lay_out(tmp_path, 3, {"model": "random_forest", "target": "label",
                                    "cluster_join_timeout": "5"}, replicated(data))
    codes = run(job, timeout=120, names=["algo-1", "algo-2"])
    assert codes["algo-1"] == 1 and codes["algo-2"] == 1, show(job)
    assert job.host("algo-1").failure.startswith(
        "instance(s) algo-3 did not join the job within 5 s (cluster_join_timeout)")
    assert job.host("algo-2").failure.startswith("the job failed on algo-1: instance(s) algo-3")


@pytest.mark.skipif(not can_cap_memory(), reason="needs a writable cgroup v1 memory controller")
def test_data_one_capped_host_cannot_hold_trains_on_three(tmp_path):
    """The same cap on every host: one host runs out of memory, three train, and the forest
    scores within 3 points of one of the same size fitted on all the rows in one process."""
    from sklearn.ensemble import RandomForestClassifier

    from sklearn_byoc.train.trainer import build_pipeline

    frame = rows(800_000, seed=5)
    for i in range(6):  # wide enough that the rows, not the interpreter, fill the cap
        frame[f"x{i}"] = np.random.default_rng(i).normal(size=len(frame)).round(5)
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    cap = 420 * 2**20
    hyperparameters = {"model": "random_forest", "n_estimators": "12", "max_depth": "12",
                       "target": "label"}

    one = Job.lay_out(tmp_path / "one", 1, hyperparameters, {"train": {"algo-1": [path]}})
    codes = run(one, memory=cap)
    assert codes["algo-1"] not in (0, None), show(one)
    assert one.host("algo-1").failure.startswith("ran out of memory"), show(one)

    three = Job.lay_out(tmp_path / "three", 3, hyperparameters, replicated(path))
    codes = run(three, timeout=300, memory=cap)
    assert codes == {h: 0 for h in HOSTS}, show(three)
    peaks = {h.name: h.peak_memory() for h in three.hosts}
    assert all(p is not None and p < cap for p in peaks.values()), peaks
    metadata = json.loads((three.host("algo-1").base / "model" / "metadata.json").read_text())
    accuracy = metadata["metrics"]["validation"]["accuracy"]

    X, y = frame.drop(columns=["label"]), frame["label"]
    kinds = {c: "categorical" if c == "colour" else "numeric" for c in X.columns}
    held = np.random.default_rng(0).random(len(X)) < 0.2
    single = build_pipeline(RandomForestClassifier(n_estimators=12, max_depth=12,
                                                   random_state=0, n_jobs=-1), X, kinds,
                            scale=False)
    single.fit(X[~held], y[~held])
    expected = float((single.predict(X[held]) == y[held]).mean())
    assert accuracy == pytest.approx(expected, abs=0.03), (accuracy, expected, peaks)
