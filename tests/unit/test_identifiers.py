"""Columns that identify rows are left out of the model, with one warning each."""
import json
import logging

import numpy as np
import pandas as pd
import pytest

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.tables.columns import identifier_columns
from sklearn_byoc.train import trainer
from sklearn_byoc.train.hyperparameters import read_settings


def table(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=n)
    return pd.DataFrame({
        "patient_id": [f"P-{i:05d}-{rng.integers(0, 9)}" for i in range(n)],
        "row": np.arange(1000, 1000 + n),
        "amount": rng.permutation(n) * 7 + 3,  # distinct on every row, counts nothing
        "x": x.round(3),
        "ward": rng.choice(["a", "b", "c"], n),
        "label": np.where(x > 0, "yes", "no"),
    })


def test_the_rule():
    frame = table().drop(columns=["label"])
    frame["ward"] = frame["ward"].astype(object)
    frame["patient_id"] = frame["patient_id"].astype(object)
    assert identifier_columns(frame) == (["patient_id", "row"], ["amount"])
    assert identifier_columns(frame.head(99)) == ([], [])  # too few rows to tell
    shuffled = frame.sample(frac=1, random_state=0)
    assert identifier_columns(shuffled)[0] == ["patient_id"]  # no longer counts in file order


def train(tmp_path, frame, **hyperparameters):
    base = tmp_path / "ml"
    (base / "input" / "data" / "train").mkdir(parents=True)
    frame.to_csv(base / "input" / "data" / "train" / "d.csv", index=False)
    settings = read_settings({"target": "label", "model": "decision_tree", **hyperparameters})
    trainer.train(Paths(base), settings, {})
    return json.loads((base / "model" / "metadata.json").read_text())


def test_identifiers_are_left_out_and_recorded_as_ignored(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="train")
    metadata = train(tmp_path, table())
    assert metadata["ignored_columns"] == ["patient_id", "row"]
    assert [f["name"] for f in metadata["features"]] == ["amount", "x", "ward"]
    roles = {c["name"]: c["role"] for c in metadata["columns"]}
    assert roles["patient_id"] == roles["row"] == "ignored"
    said = [r.getMessage() for r in caplog.records]
    assert sum("keep_columns=patient_id keeps it" in m for m in said) == 1
    assert sum("keep_columns=row keeps it" in m for m in said) == 1
    assert sum("'amount' holds a different whole number on every row" in m for m in said) == 1


@pytest.mark.parametrize("hyperparameters, ignored", [
    ({"keep_columns": "patient_id,row"}, []),
    ({"keep_columns": "1"}, ["patient_id"]),  # by 0-based index
    ({"ignore_columns": "x", "keep_columns": "row"}, ["patient_id", "x"]),
])
def test_keep_columns_and_ignore_columns_win(tmp_path, hyperparameters, ignored):
    assert train(tmp_path, table(), **hyperparameters)["ignored_columns"] == ignored


def test_keep_columns_naming_no_column_fails_naming_the_columns(tmp_path):
    with pytest.raises(Exception, match="keep_columns.*columns: patient_id, row"):
        train(tmp_path, table(), keep_columns="patient")
