"""The data sets the benchmark trains on, and the request bodies it sends.

Two data sets:

- ``churn``: the bundled ``data/churn.csv`` (numeric and categorical
  features, some missing values), target ``churn``;
- ``numeric``: 20 numeric features drawn from a fixed seed, a binary target
  ``label`` from a noisy linear rule; with a cheap model, the server's own
  overhead dominates the time of a request.

Bodies hold features only, in training order, without a header: what a
SageMaker caller or a batch transform job sends.  Large bodies repeat a
block of rows until the requested size; every body ends with a newline.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHURN = ROOT / "data" / "churn.csv"
CHURN_TARGET = "churn"
NUMERIC_FEATURES = 20
NUMERIC_TARGET = "label"
SEED = 20240611


@dataclass
class Payload:
    """One request body and what it holds."""

    name: str  # "single-csv", "single-json", "multi-1k", "multi-6mb", ...
    label: str  # for tables: "1 row (CSV)", "1,000 rows", "6.0 MB"
    content_type: str
    body: bytes
    rows: int
    path: Path | None = None  # where the body was written, for wrk and the in-process run

    @property
    def megabytes(self) -> float:
        return len(self.body) / 1e6

    def write(self, folder: Path) -> Path:
        path = folder / f"{self.name}.{'json' if 'json' in self.content_type else 'csv'}"
        path.write_bytes(self.body)
        return path


def churn_table() -> tuple[list[str], list[list[str]]]:
    """Feature names and feature cells (as text) of the bundled data."""
    with CHURN.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for row in reader if row]
    keep = [i for i, name in enumerate(header) if name != CHURN_TARGET]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows]


def numeric_training_csv(rows: int) -> str:
    """The generated all-numeric training set, header included."""
    X, y = _numeric_rows(rows, seed=SEED, with_target=True)
    names = numeric_names() + [NUMERIC_TARGET]
    lines = [",".join(names)]
    lines += [",".join(cells + [str(label)]) for cells, label in zip(X, y)]
    return "\n".join(lines) + "\n"


def numeric_names() -> list[str]:
    return [f"x{i:02d}" for i in range(1, NUMERIC_FEATURES + 1)]


def numeric_table(rows: int) -> list[list[str]]:
    """Feature cells (as text) of rows to predict, drawn apart from the training rows."""
    X, _ = _numeric_rows(rows, seed=SEED + 1, with_target=False)
    return X


def _numeric_rows(rows: int, *, seed: int, with_target: bool):
    rng = np.random.default_rng(seed)
    weights = np.random.default_rng(SEED - 1).normal(size=NUMERIC_FEATURES)
    X = rng.normal(loc=0.0, scale=1.0, size=(rows, NUMERIC_FEATURES))
    X[:, ::4] *= 50.0  # a few features on another scale, as real data has
    y = None
    if with_target:
        score = (X / X.std(axis=0)) @ weights + rng.normal(scale=1.0, size=rows)
        y = (score > 0).astype(int)
    cells = [[f"{v:.4f}" for v in row] for row in X]
    return cells, y


def csv_body(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def json_value(cell: str, kind: str):
    """A CSV cell as a JSON value typed the way the model's metadata types the feature."""
    if cell == "":
        return None
    if kind == "numeric":
        number = float(cell)
        return int(number) if number.is_integer() and "." not in cell else number
    return cell


def json_body(rows: list[list[str]], kinds: list[str]) -> bytes:
    instances = [[json_value(c, k) for c, k in zip(row, kinds)] for row in rows]
    return json.dumps({"instances": instances}).encode("utf-8")


def repeat_to_size(block: bytes, size: int) -> tuple[bytes, int]:
    """``block`` (whole lines) repeated, then cut at a line end, to about ``size`` bytes."""
    if not block.endswith(b"\n"):
        block += b"\n"
    copies = size // len(block)
    body = block * copies
    rest = block[: size - len(body)]
    rest = rest[: rest.rfind(b"\n") + 1]
    body += rest
    return body, body.count(b"\n")


def human_size(size_bytes: float) -> str:
    mb = size_bytes / 1e6
    return f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"


@dataclass
class DataSet:
    """A model's feature rows and how to build every payload from them."""

    key: str  # "churn" or "numeric"
    names: list[str]
    rows: list[list[str]]  # enough distinct rows for a block; cells as text

    def single_row(self) -> list[str]:
        """The first row without missing cells."""
        return next(r for r in self.rows if all(c != "" for c in r))

    def single_csv(self) -> Payload:
        return Payload("single-csv", "1 row, CSV", "text/csv", csv_body([self.single_row()]), 1)

    def single_json(self, kinds: list[str]) -> Payload:
        return Payload("single-json", "1 row, JSON", "application/json",
                       json_body([self.single_row()], kinds), 1)

    def multi_rows(self, count: int) -> Payload:
        rows = [self.rows[i % len(self.rows)] for i in range(count)]
        return Payload(f"multi-{count}", f"{count:,} rows", "text/csv", csv_body(rows), count)

    def multi_bytes(self, size: int, name: str) -> Payload:
        block = csv_body(self.rows)
        body, rows = repeat_to_size(block, size)
        return Payload(name, human_size(len(body)), "text/csv", body, rows)


def churn_dataset() -> DataSet:
    names, rows = churn_table()
    return DataSet("churn", names, rows)


def numeric_dataset(rows: int = 5000) -> DataSet:
    return DataSet("numeric", numeric_names(), numeric_table(rows))
