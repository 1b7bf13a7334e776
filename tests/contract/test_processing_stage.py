"""The processing stage as a process, on /opt/ml trees laid out the way SageMaker lays them out."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from scripts.harness import failure_reason, processing_tree, run_all, run_stage

N_UNIQUE = 400       # distinct rows with a target
N_DUPLICATES = 6     # exact copies of some of them
N_NO_TARGET = 5      # rows with an empty target


def raw_csv() -> str:
    """A raw export: target last, 25 % positives, duplicates and missing targets mixed in."""
    rng = np.random.default_rng(11)
    lines = ["tenure,plan,charges,churn"]
    for i in range(N_UNIQUE):
        label = "yes" if i % 4 == 0 else "no"
        plan = ["basic", "gold", ""][i % 3]
        lines.append(f"{i},{plan},{rng.uniform(10, 99):.2f},{label}")
    lines += [lines[1 + 7 * k] for k in range(N_DUPLICATES)]
    lines += [f"{1000 + k},gold,{50 + k}.5," for k in range(N_NO_TARGET)]
    order = rng.permutation(len(lines) - 1) + 1
    return "\n".join([lines[0]] + [lines[i] for i in order]) + "\n"


def read(path: Path, header: bool = True) -> tuple[list[str] | None, list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    return (rows[0], rows[1:]) if header else (None, rows)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("source") / "export.csv"
    path.write_text(raw_csv())
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, source):
    jobs = {}
    single = processing_tree(tmp_path_factory.mktemp("single"), {"export.csv": source})
    jobs["single"] = (single, ["prepare", "--target", "churn"])
    two_hosts = processing_tree(tmp_path_factory.mktemp("two-hosts"), {"export.csv": source},
                                hosts=["algo-1", "algo-2"], current_host="algo-2")
    jobs["two hosts"] = (two_hosts, ["--target", "churn"])
    # No arguments at all: the target is the first column.
    label_first = tmp_path_factory.mktemp("label-first")
    folder = label_first / "processing" / "input" / "raw"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text(
        "".join(f"{i % 2},{i},{i * 0.5}\n" for i in range(100)))
    jobs["no arguments"] = (label_first, [])
    first_of_two = processing_tree(tmp_path_factory.mktemp("first-of-two"), {"export.csv": source},
                                   hosts=["algo-1", "algo-2"], current_host="algo-1")
    jobs["first of two hosts"] = (first_of_two, ["--target", "churn"])
    jobs["regression"] = (processing_tree(tmp_path_factory.mktemp("regression"),
                                          {"export.csv": source}), ["--target", "charges"])
    three = tmp_path_factory.mktemp("three-classes")
    folder = three / "processing" / "input"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_text("size,kind\n" + "".join(
        f"{i * 0.37:.2f},{['red', 'green', 'blue'][i % 3]}\n" for i in range(90)))
    jobs["multiclass"] = (three, ["--target", "kind"])
    jobs["ignore columns"] = (processing_tree(tmp_path_factory.mktemp("ignore"),
                                              {"export.csv": source}),
                              ["--target", "churn", "--ignore-columns", "tenure,1"])
    return run_all("processing", jobs)


def test_prepare_writes_the_four_splits(runs):
    base, result = runs["single"]
    assert result.returncode == 0, result.stderr[-3000:]
    out = base / "processing" / "output"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "problem/problem.json", "sample_payload/sample_payload.tar.gz", "test/test.csv",
        "test_features/test_features.csv", "train/train.csv", "validation/validation.csv"]
    assert not (base / "output" / "failure").exists()
    assert not (base / "output" / "message").exists()


def test_split_sizes_cleaning_and_target_first(runs, source):
    base, _ = runs["single"]
    out = base / "processing" / "output"
    _, raw_rows = read(source)
    kept = {tuple(r) for r in raw_rows if r[3] != ""}
    assert len(kept) == N_UNIQUE
    splits = {}
    for name in ("train", "validation", "test"):
        header, rows = read(out / name / f"{name}.csv")
        assert header == ["churn", "tenure", "plan", "charges"]  # target moved first
        splits[name] = rows
    total = sum(len(rows) for rows in splits.values())
    assert total == N_UNIQUE  # duplicates and rows without a target dropped
    assert len(splits["test"]) == round(0.15 * N_UNIQUE) == 60
    assert len(splits["validation"]) == 60
    assert len(splits["train"]) == N_UNIQUE - 120
    everything = [tuple(r) for rows in splits.values() for r in rows]
    assert len(set(everything)) == len(everything)  # no row in two splits, no duplicate
    assert all(r[0] in ("yes", "no") for r in everything)
    # every kept row is there, unchanged apart from the column order
    def value(row):
        tenure, plan, charges, label = row
        return int(tenure), plan, round(float(charges), 2), label

    assert {value((r[1], r[2], r[3], r[0])) for r in everything} == {value(r) for r in kept}


def test_splits_are_stratified(runs):
    base, _ = runs["single"]
    out = base / "processing" / "output"
    for name in ("train", "validation", "test"):
        _, rows = read(out / name / f"{name}.csv")
        share = sum(r[0] == "yes" for r in rows) / len(rows)
        assert share == pytest.approx(0.25, abs=0.02), name


def test_test_features_are_the_test_rows_without_target_or_header(runs):
    base, _ = runs["single"]
    out = base / "processing" / "output"
    _, test_rows = read(out / "test" / "test.csv")
    _, features = read(out / "test_features" / "test_features.csv", header=False)
    assert len(features) == len(test_rows) == 60
    assert features == [r[1:] for r in test_rows]


def test_each_host_writes_files_named_after_it(runs):
    base, result = runs["two hosts"]
    assert result.returncode == 0, result.stderr[-3000:]
    out = base / "processing" / "output"
    names = sorted(p.name for p in out.rglob("*.csv"))
    assert names == ["test-algo-2.csv", "test_features-algo-2.csv", "train-algo-2.csv",
                     "validation-algo-2.csv"]


def test_only_the_first_host_writes_the_single_files(runs):
    for key, expected in (("two hosts", False), ("first of two hosts", True)):
        base, result = runs[key]
        assert result.returncode == 0, result.stderr[-3000:]
        out = base / "processing" / "output"
        assert (out / "problem" / "problem.json").exists() is expected, key
        assert (out / "sample_payload" / "sample_payload.tar.gz").exists() is expected, key


def test_sample_payload_is_one_row_requests_of_test_features(runs):
    import tarfile

    base, _ = runs["single"]
    out = base / "processing" / "output"
    _, features = read(out / "test_features" / "test_features.csv", header=False)
    with tarfile.open(out / "sample_payload" / "sample_payload.tar.gz") as tar:
        members = tar.getmembers()
        assert all(m.isfile() for m in members)
        bodies = [tar.extractfile(m).read().decode() for m in members]
    assert len(bodies) == 10
    # Each request is one headerless CSV row, as serve takes it and as the
    # test features hold it.
    assert [list(csv.reader(io.StringIO(body))) for body in bodies] == [
        [row] for row in features[:10]]


def test_problem_json_says_what_the_data_is(runs):
    import json

    expected = {
        "single": ("churn", "classification", "BinaryClassification", "validation:accuracy",
                   "Maximize"),
        "multiclass": ("kind", "classification", "MulticlassClassification",
                       "validation:accuracy", "Maximize"),
        "regression": ("charges", "regression", "Regression", "validation:rmse", "Minimize"),
    }
    for key, (target, task, problem_type, metric, direction) in expected.items():
        base, result = runs[key]
        assert result.returncode == 0, result.stderr[-3000:]
        out = base / "processing" / "output"
        problem = json.loads((out / "problem" / "problem.json").read_text())
        assert problem["target"] == target, key
        assert problem["task"] == task, key
        assert problem["problem_type"] == problem_type, key
        assert problem["tuning_objective"] == {"MetricName": metric, "Type": direction}, key
        for name in ("train", "validation", "test"):
            assert problem["rows"][name] == len(read(out / name / f"{name}.csv")[1]), key
        assert target not in problem["features"]
    assert json.loads((runs["multiclass"][0] / "processing" / "output" / "problem"
                       / "problem.json").read_text())["class_count"] == 3


def test_no_arguments_takes_the_first_column_as_target(runs):
    base, result = runs["no arguments"]
    assert result.returncode == 0, result.stderr[-3000:]
    out = base / "processing" / "output"
    header, rows = read(out / "train" / "train.csv")
    assert header == ["column_0", "column_1", "column_2"]
    assert {r[0] for r in rows} == {"0", "1"}
    sizes = [len(read(out / n / f"{n}.csv")[1]) for n in ("train", "validation", "test")]
    assert sizes == [70, 15, 15]


def test_ignore_columns_leave_columns_out_of_every_split(runs):
    base, result = runs["ignore columns"]
    assert result.returncode == 0, result.stderr[-3000:]
    out = base / "processing" / "output"
    for name in ("train", "validation", "test"):
        assert read(out / name / f"{name}.csv")[0] == ["churn", "charges"]
    _, features = read(out / "test_features" / "test_features.csv", header=False)
    assert {len(row) for row in features} == {1}
    assert "leaving out column(s) 'tenure', 'plan' (--ignore-columns)" in result.stderr


def test_help(tmp_path):
    result = run_stage("processing", tmp_path, ["--help"])
    assert result.returncode == 0
    assert "prepare" in result.stdout and "--target" in result.stdout
    result = run_stage("processing", tmp_path, ["prepare", "--help"])
    assert result.returncode == 0
    for option in ("--target", "--train-fraction", "--validation-fraction", "--test-fraction",
                   "--header", "--seed", "--keep-duplicates", "--ignore-columns"):
        assert option in result.stdout
    assert not (tmp_path / "output" / "failure").exists()


def test_rerun_after_a_failure_clears_the_reason(tmp_path, source):
    processing_tree(tmp_path, {"export.csv": source})
    assert run_stage("processing", tmp_path, ["--target", "churned"]).returncode == 1
    assert (tmp_path / "output" / "message").exists()
    result = run_stage("processing", tmp_path, ["--target", "churn"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "output" / "message").exists()
    assert not (tmp_path / "output" / "failure").exists()


# -- bad input --------------------------------------------------------------------------------
def no_input(base: Path, source: Path):
    processing_tree(base, {})
    shutil.rmtree(base / "processing" / "input")


def empty_input(base: Path, source: Path):
    processing_tree(base, {})


def not_utf8(base: Path, source: Path):
    processing_tree(base, {"export.csv": source})
    (base / "processing" / "input" / "legacy.csv").write_bytes(
        "tenure,plan,charges,churn\n1,caf\xe9,2.0,no\n".encode("latin-1"))


def good(base: Path, source: Path):
    processing_tree(base, {"export.csv": source})


def numeric_typo(base: Path, source: Path):
    lines = source.read_text().splitlines()
    lines[20] = "12,gold,12.50 EUR,no"
    processing_tree(base, {})
    (base / "processing" / "input" / "export.csv").write_text("\n".join(lines) + "\n")


BAD = {
    "no input folder": (no_input, ["--target", "churn"], ["processing/input", "does not exist"]),
    "empty input folder": (empty_input, ["--target", "churn"],
                           ["processing/input", "no data files"]),
    "target missing": (good, ["--target", "churned"],
                       ["--target", "'churned'", "tenure, plan, charges, churn"]),
    "badly typed option": (good, ["--target", "churn", "--train-fraction", "most"],
                           ["--train-fraction", "'most'"]),
    "fractions do not add up": (good, ["--train-fraction", "0.9"], ["add up to 1"]),
    "ignore an unknown column": (good, ["--target", "churn", "--ignore-columns", "tenur"],
                                ["--ignore-columns", "'tenur'", "did you mean 'tenure'?",
                                 "tenure, plan, charges, churn"]),
    "ignore the target": (good, ["--target", "churn", "--ignore-columns", "churn"],
                          ["--ignore-columns", "target column 'churn'"]),
    "unknown option": (good, ["--target", "churn", "--shuffle"], ["--shuffle"]),
    "unknown mode": (good, ["transmogrify"], ["'transmogrify'", "prepare"]),
    "not utf-8": (not_utf8, ["--target", "churn"], ["legacy.csv", "UTF-8"]),
    "stray word in a numeric column": (numeric_typo, ["--target", "churn"],
                                       ["'charges'", "'12.50 EUR'", "line 21", "export.csv"]),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, source):
    jobs = {}
    for key, (make, args, _) in BAD.items():
        base = tmp_path_factory.mktemp(key.replace(" ", "-"))
        make(base, source)
        jobs[key] = (base, args)
    return run_all("processing", jobs)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_with_a_message(bad_runs, case):
    base, result = bad_runs[case]
    assert result.returncode != 0
    message = failure_reason(base, "message")
    assert message == failure_reason(base, "failure")
    assert message.endswith("\n") and len(message.splitlines()) == 1
    assert len(message.encode()) <= 1024
    for word in BAD[case][2]:
        assert word in message, f"{word!r} not in {message!r}"
    assert "Traceback" not in message and "internal error" not in message
    output = base / "processing" / "output"
    assert not output.exists() or not list(output.rglob("*.csv"))
