"""Bad training data and hyperparameters beyond the core matrix of the contract tests.

Each case runs the real train stage and must end with a non-zero exit and a
one-line reason in output/failure (short enough for the 1024 characters of
FailureReason) that names the file, line, column or key at fault.  Zero-byte
files and markers among good ones are skipped with one warning naming them
(Spark and Athena write them); a channel of nothing but empty files still
fails.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fastparquet
import pandas as pd
import pytest

from scripts.harness import DATA, failure_reason, run_stage, training_tree

LINES = DATA.read_text().splitlines()
HEADER, ROWS = LINES[0], LINES[1:]
SMALL = "\n".join([HEADER] + ROWS[:400]) + "\n"  # enough rows, fast to fit
FIRST = ROWS[0]
AFTER_AGE = FIRST.split(",", 1)[1]  # a row without its first cell (customer_age)


def with_row(row: str) -> str:
    """SMALL plus one row, which is line 402 of the file."""
    return SMALL + row + "\n"


def parquet_of(text: str, drop: tuple[str, ...] = ()) -> bytes:
    frame = pd.read_csv(io.StringIO(text)).drop(columns=list(drop))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "part.parquet"
        fastparquet.write(str(path), frame, compression="SNAPPY", write_index=False)
        return path.read_bytes()


PARQUET = parquet_of(SMALL)


# name: (files of the train channel, hyperparameters, words the reason must hold)
CASES = {
    "unterminated quote at EOF": (
        {"part-0.csv": SMALL, "part-1.csv": SMALL + '33,1,2,"month-to-month\n'}, {},
        ["part-1.csv", "not valid CSV", "EOF inside string"]),
    "a number column with a word": (
        {"data.csv": with_row("forty," + AFTER_AGE)}, {},
        ["'customer_age'", "'forty'", "line 402", "data.csv"]),
    "a text column with numbers is fine but a number column with text is not": (
        {"data.csv": with_row(FIRST.replace("25", "twenty-five", 1))}, {},
        ["'tenure_months'", "'twenty-five'", "line 402"]),
    "a 10 MB line of 2.5 million fields": (
        {"data.csv": with_row(",".join(["1"] * 2_500_000))}, {},
        ["data.csv", "not valid CSV", "line 402"]),
    "a 10 MB number": (
        {"data.csv": with_row("9" * 10_000_000 + "," + AFTER_AGE)}, {},
        ["'customer_age'", "line 402", "data.csv", "10000000 characters"]),
    "a 10 MB word in a number column": (
        {"data.csv": with_row("x" * 10_000_000 + "," + AFTER_AGE)}, {},
        ["'customer_age'", "line 402", "10000000 characters"]),
    "a number beyond the float range": (
        {"data.csv": with_row("1e400," + AFTER_AGE)}, {},
        ["'customer_age'", "infinite", "line 402", "data.csv"]),
    "inf": (
        {"data.csv": with_row("-inf," + AFTER_AGE)}, {}, ["'customer_age'", "line 402"]),
    "files with different columns": (
        {"a.csv": SMALL, "b.csv": SMALL.replace("region", "area")}, {},
        ["b.csv", "different columns", "missing: region", "extra: area"]),
    "a target with a single class": (
        {"data.csv": "\n".join([HEADER] + [r.rsplit(",", 1)[0] + ",no" for r in ROWS[:300]])
         + "\n"}, {}, ["'churn'", "single class", "'no'"]),
    "validation_fraction=1.5": (
        {"data.csv": SMALL}, {"validation_fraction": "1.5"}, ["'validation_fraction'", "1.5"]),
    "validation_fraction=0": (
        {"data.csv": SMALL}, {"validation_fraction": "0"}, ["'validation_fraction'"]),
    "holdout_fraction=1.5": (
        {"data.csv": SMALL}, {"holdout_fraction": "1.5"}, ["'holdout_fraction'", "1.5"]),
    "n_estimators=10.5": (
        {"data.csv": SMALL}, {"model": "random_forest", "n_estimators": "10.5"},
        ["'n_estimators'", "an integer", "'10.5'"]),
    "n_estimators=0": (
        {"data.csv": SMALL}, {"model": "random_forest", "n_estimators": "0"},
        ["'n_estimators'", "Got 0"]),
    "max_depth=-3": (
        {"data.csv": SMALL}, {"model": "random_forest", "max_depth": "-3"},
        ["'max_depth'", "-3"]),
    "n_estimators=ten": (
        {"data.csv": SMALL}, {"model": "random_forest", "n_estimators": "ten"},
        ["'n_estimators'", "'ten'"]),
    "seed=-1": ({"data.csv": SMALL}, {"seed": "-1"}, ["'seed'", "-1"]),
    "an unknown key": ({"data.csv": SMALL}, {"n_trees": "10"}, ["n_trees"]),
    "a target that is not a column": (
        {"data.csv": SMALL}, {"target": "chrun"}, ["'target'", "chrun"]),
    "nothing but empty files": (
        {"part-0.csv": "", "part-1.csv": "", "sub/part-2.csv": ""}, {},
        ["only empty files", "part-0.csv"]),
    # Parquet, and the files that are neither CSV nor Parquet.
    "a corrupt Parquet file": (
        {"part-00000": PARQUET, "part-00001": PARQUET[: len(PARQUET) // 3]}, {},
        ["part-00001", "cannot be read as Parquet", "damaged"]),
    "a Parquet file without the target column": (
        {"part-00000.snappy.parquet": parquet_of(SMALL, drop=("churn",))}, {},
        ["'target'", "'churn'", "customer_age"]),
    "Parquet and CSV mixed in one channel": (
        {"part-00000.parquet": PARQUET, "extra/part-00001.csv": SMALL}, {},
        ["mixes Parquet files", "part-00000.parquet", "CSV files", "extra/part-00001.csv"]),
    "a ContentType that disagrees with the files": (
        {"part-00000": PARQUET}, {},
        ["ContentType 'text/csv'", "Parquet files", "part-00000", "application/x-parquet"]),
    "a script in the channel": (
        {"churn.csv": SMALL, "make_churn.py": "import numpy\nprint('hello')\n"}, {},
        ["make_churn.py", "neither CSV nor Parquet", ".py"]),
    "a .parquet name without Parquet inside": (
        {"part-00000.parquet": SMALL}, {}, ["part-00000.parquet", "does not begin with PAR1"]),
}
CONTENT_TYPES = {"a ContentType that disagrees with the files": "text/csv"}


def run_case(tmp_path, name):
    files, hyperparameters, _ = CASES[name]
    base = tmp_path / name.replace(" ", "_").replace("=", "-").replace(".", "")
    content_types = {"train": CONTENT_TYPES[name]} if name in CONTENT_TYPES else None
    training_tree(base, {"train": files}, {"target": "churn", **hyperparameters},
                  content_types=content_types)
    return base, run_stage("train", base, timeout=300)


def test_bad_data_and_hyperparameters_fail_with_a_one_line_reason(tmp_path):
    with ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 2))) as pool:
        runs = dict(zip(CASES, pool.map(lambda n: run_case(tmp_path, n), CASES)))
    problems = []
    for name, (base, result) in runs.items():
        words = CASES[name][2]
        if result.returncode == 0:
            problems.append(f"{name}: train succeeded")
            continue
        failure = base / "output" / "failure"
        if not failure.exists():
            problems.append(f"{name}: no failure file; log:\n{result.stderr[-1500:]}")
            continue
        reason = failure_reason(base)
        if reason.count("\n") != 1 or not reason.endswith("\n"):
            problems.append(f"{name}: the reason is not one line: {reason[:300]!r}")
        if len(reason) > 1024:
            problems.append(f"{name}: the reason is {len(reason)} characters long")
        missing = [w for w in words if w not in reason]
        if missing:
            problems.append(f"{name}: the reason lacks {missing}: {reason[:600]}")
        if result.returncode != 1:
            problems.append(f"{name}: exit {result.returncode} (a data error exits 1): "
                            f"{reason[:300]}")
        if "Traceback" in reason or "internal error" in reason:
            problems.append(f"{name}: {reason[:300]}")
    assert not problems, "\n".join(problems)


def test_zero_byte_files_and_markers_among_good_ones_are_skipped_with_one_warning(tmp_path):
    files = {"part-0000.csv": SMALL, "part-0001.csv": "", "_SUCCESS": "",
             ".part-0000.csv.crc": b"crc\x00\x01", "day=2/part-0002.csv": "",
             "day=2/part-0003.csv": SMALL}
    base = training_tree(tmp_path, {"train": files}, {"target": "churn", "model": "linear"})
    result = run_stage("train", base, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (base / "output" / "failure").exists()
    warnings = [line for line in result.stderr.splitlines() if "WARNING skipping" in line]
    channel = base / "input" / "data" / "train"
    assert len(warnings) == 1, warnings
    assert f"skipping 4 file(s) under {channel} that hold no data" in warnings[0]
    for name in (".part-0000.csv.crc", "_SUCCESS", "day=2/part-0002.csv", "part-0001.csv"):
        assert name in warnings[0]
    assert "read 800 rows" in result.stderr and "from 2 CSV file(s)" in result.stderr
    assert (base / "model" / "model.joblib").is_file()


@pytest.mark.parametrize("layout", ["empty folder", "only empty files"])
def test_an_empty_channel_still_fails(tmp_path, layout):
    files = {} if layout == "empty folder" else {"a.csv": "", "b.csv": ""}
    base = training_tree(tmp_path, {"train": files}, {"target": "churn"})
    if layout == "empty folder":
        shutil.rmtree(base / "input" / "data" / "train")
        (base / "input" / "data" / "train").mkdir()
    result = run_stage("train", base, timeout=300)
    assert result.returncode == 1
    reason = failure_reason(base)
    assert str(base / "input" / "data" / "train") in reason and reason.count("\n") == 1
