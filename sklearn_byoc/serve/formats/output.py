"""Answers: a :class:`Prediction` (or what a user's predict_fn returned) as bytes.

``output`` (the ``output=`` custom attribute) = ``label`` | ``probabilities`` | ``all``:

``text/csv``               one line per row: the label; or the class probabilities;
                           or the label then the probabilities
``application/json``       ``{"predictions": [...], "probabilities": [[...]],
                           "classes": [...]}`` (keys by output)
``application/jsonlines``  one object per row: ``{"prediction": ...,
                           "probabilities": {class: p}}``
``application/x-npy``      the labels, or the probabilities (see formats/npy.py)

No answer ends with a newline after its last row: batch transform's
``AssembleWith=Line`` adds one after each answer, and one here too would
leave an empty line in the output file.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from sklearn_byoc.serve.errors import RequestError


@dataclass
class Prediction:
    """What the built-in predict layer gives the built-in output layer."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None
    classes: list | None = None

    @classmethod
    def concat(cls, parts: list["Prediction"]) -> "Prediction":
        if len(parts) == 1:
            return parts[0]
        probabilities = None
        if parts[0].probabilities is not None:
            probabilities = np.concatenate([p.probabilities for p in parts])
        return cls(np.concatenate([p.labels for p in parts]), probabilities, parts[0].classes)

    def __len__(self) -> int:
        return len(self.labels)

    def as_value(self, output: str):
        """What AWS's default predict_fn would have returned, for a user's output_fn."""
        if output == "label" or self.probabilities is None:
            return self.labels
        if output == "probabilities":
            return self.probabilities
        return {"predictions": self.labels, "probabilities": self.probabilities,
                "classes": list(self.classes or [])}


def plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plain_list(values: np.ndarray) -> list:
    if values.dtype.kind == "f":
        values = np.where(np.isfinite(values), values, np.nan)
        return [None if v != v else v for v in values.tolist()]
    return [plain(v) for v in values.tolist()] if values.dtype == object else values.tolist()


def check_output(prediction: Prediction, output: str) -> None:
    if output != "label" and prediction.probabilities is None:
        raise RequestError(f"output={output} needs class probabilities, which this model "
                           "does not give (regression or no predict_proba); use output=label")


def encode_json(prediction: Prediction, output: str) -> bytes:
    body = {}
    if output in ("label", "all"):
        body["predictions"] = plain_list(prediction.labels)
    if output != "label":
        body["probabilities"] = prediction.probabilities.tolist()
        body["classes"] = [plain(c) for c in prediction.classes]
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def encode_jsonlines(prediction: Prediction, output: str) -> bytes:
    labels = plain_list(prediction.labels)
    proba = prediction.probabilities.tolist() if output != "label" else None
    classes = [str(plain(c)) for c in prediction.classes] if proba is not None else None
    lines = []
    for i, label in enumerate(labels):
        item = {}
        if output in ("label", "all"):
            item["prediction"] = label
        if proba is not None:
            item["probabilities"] = dict(zip(classes, proba[i]))
        lines.append(json.dumps(item, separators=(",", ":")))
    return "\n".join(lines).encode("utf-8")


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def label_cells(labels: np.ndarray) -> list[str]:
    if labels.dtype.kind in "iub":
        return [str(v) for v in labels.tolist()]
    if labels.dtype.kind == "f":
        return ["" if v != v or v in (math.inf, -math.inf) else repr(v)
                for v in labels.tolist()]
    values = labels.tolist()
    if all(type(v) is str and csv_cell(v) == v for v in set(values)):
        return values  # plain text labels are their own cells
    # Class labels repeat: format each distinct one once.
    cells: dict = {}
    out = []
    for value in values:
        cell = cells.get(value)
        if cell is None:
            cell = cells[value] = csv_cell(plain(value))
        out.append(cell)
    return out


def encode_csv(prediction: Prediction, output: str) -> bytes:
    if output == "label":
        lines = label_cells(prediction.labels)
    else:
        probabilities = [",".join(map(repr, row)) for row in prediction.probabilities.tolist()]
        if output == "probabilities":
            lines = probabilities
        else:
            lines = [label + "," + p
                     for label, p in zip(label_cells(prediction.labels), probabilities)]
    return "\n".join(lines).encode("utf-8")


def csv_header(prediction: Prediction, output: str) -> bytes:
    """The row naming a CSV answer's columns: ``prediction``, then the classes in the
    order of the probabilities (``Accept: text/csv;header=present``)."""
    names = [] if output == "probabilities" else ["prediction"]
    if output != "label":
        names += [csv_cell(plain(c)) for c in prediction.classes]
    return ",".join(names).encode("utf-8")


# -- what a user's predict_fn returned --------------------------------------------------------
def jsonable(value):
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()] if value.dtype == object \
            else plain_list(value) if value.ndim == 1 else [jsonable(r) for r in value]
    if isinstance(value, np.generic):
        return plain(value)
    if isinstance(value, float):
        return plain(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # a DataFrame
        return jsonable(value.to_dict(orient="records"))
    if hasattr(value, "tolist"):  # a Series, an Index
        return jsonable(value.tolist())
    return value


def value_rows(value) -> list:
    rows = jsonable(value)
    return rows if isinstance(rows, list) else [rows]


def encode_json_value(value) -> bytes:
    return json.dumps(jsonable(value), separators=(",", ":")).encode("utf-8")


def encode_jsonlines_value(value) -> bytes:
    return "\n".join(json.dumps(r, separators=(",", ":")) for r in value_rows(value)).encode()


def encode_csv_value(value) -> bytes:
    lines = []
    for row in value_rows(value):
        cells = row if isinstance(row, list) else [row]
        lines.append(",".join(csv_cell(c) for c in cells))
    return "\n".join(lines).encode("utf-8")
