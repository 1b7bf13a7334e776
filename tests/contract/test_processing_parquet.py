"""prepare and evaluate on Parquet: Parquet in, Parquet splits out, and the model scored on them."""
from __future__ import annotations

import csv
import io
import json
import shutil

import fastparquet
import numpy as np
import pandas as pd

from scripts.harness import failure_reason, processing_tree, run_stage, training_tree


def raw_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(21)
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["basic", "gold", "family"], n).astype(object)
    charges = rng.uniform(10, 99, n).round(2)
    churn = np.where(tenure + rng.normal(0, 10, n) < 20, "yes", "no").astype(object)
    return pd.DataFrame({"tenure": tenure, "plan": plan, "charges": charges, "churn": churn})


def test_prepare_reads_parquet_writes_parquet_splits_and_csv_test_features(tmp_path):
    base = processing_tree(tmp_path / "prepare", {})
    source = base / "processing" / "input"
    frame = raw_frame()
    fastparquet.write(str(source / "part-00000"), frame.iloc[:150], write_index=False)
    fastparquet.write(str(source / "part-00001"), frame.iloc[150:], write_index=False)
    (source / "_SUCCESS").write_text("")
    result = run_stage("processing", base, ["prepare", "--target", "churn",
                                            "--output-format", "parquet"])
    assert result.returncode == 0, result.stderr[-3000:]
    out = base / "processing" / "output"
    sizes = {}
    for name in ("train", "validation", "test"):
        path = out / name / f"{name}.parquet"
        assert path.read_bytes()[:4] == b"PAR1"
        split = fastparquet.ParquetFile(str(path)).to_pandas()
        assert split.columns.tolist() == ["churn", "tenure", "plan", "charges"]
        sizes[name] = len(split)
    unique = len(frame.drop_duplicates())  # prepare drops exact duplicates
    assert sum(sizes.values()) == unique
    assert sizes["train"] == unique - sizes["validation"] - sizes["test"]
    assert sizes["test"] == round(unique * 0.15)
    # The batch transform input stays CSV without a header: a header line would be a record.
    rows = list(csv.reader(io.StringIO((out / "test_features" / "test_features.csv")
                                       .read_text())))
    assert len(rows) == sizes["test"] and len(rows[0]) == 3
    assert "skipping 1 file(s)" in result.stderr and "_SUCCESS" in result.stderr

    # train reads the Parquet split, evaluate scores the Parquet test split.
    job = training_tree(tmp_path / "train", {"train": [out / "train" / "train.parquet"],
                                             "validation": [
                                                 out / "validation" / "validation.parquet"]},
                        {"target": "churn"}, content_types={"train": "application/x-parquet"})
    trained = run_stage("train", job)
    assert trained.returncode == 0, trained.stderr[-3000:]
    scoring = processing_tree(tmp_path / "evaluate", {})
    shutil.copytree(out / "test", scoring / "processing" / "test")
    shutil.copytree(job / "model", scoring / "processing" / "model")
    scored = run_stage("processing", scoring, ["evaluate", "--bootstrap", "0"])
    assert scored.returncode == 0, scored.stderr[-3000:]
    report = json.loads((scoring / "processing" / "evaluation" / "evaluation.json").read_text())
    matrix = report["binary_classification_metrics"]["confusion_matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == sizes["test"]


def test_prepare_refuses_an_unknown_output_format(tmp_path):
    base = processing_tree(tmp_path, {})
    fastparquet.write(str(base / "processing" / "input" / "part-0"), raw_frame(20),
                      write_index=False)
    result = run_stage("processing", base, ["--target", "churn", "--output-format", "orc"])
    assert result.returncode == 1
    assert failure_reason(base).startswith(
        "processing prepare: argument --output-format: invalid choice: 'orc' (choose from "
        "'csv', 'parquet')")


def test_prepare_without_target_takes_the_column_named_like_a_target(tmp_path):
    base = processing_tree(tmp_path, {})
    frame = raw_frame(60).rename(columns={"churn": "label"})
    (base / "processing" / "input" / "raw.csv").write_text(frame.to_csv(index=False))
    result = run_stage("processing", base, ["prepare"])
    assert result.returncode == 0, result.stderr[-3000:]
    header = (base / "processing" / "output" / "train" / "train.csv").read_text().split("\n")[0]
    assert header == "label,tenure,plan,charges"
    assert "target: 'label', the only column named target, label, class or y" in result.stderr
