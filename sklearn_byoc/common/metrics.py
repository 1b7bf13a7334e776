"""Model quality metrics, and the one line per metric that SageMaker scrapes.

Training jobs turn log lines into metrics with the regexes of the job's
``MetricDefinitions``; automatic model tuning uses the last value printed for
the objective.  Every metric is printed as ``<split>:<name>=<value>;`` so one
regex per metric suffices (see the README), and the objective comes last.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1",
                          "auc", "log_loss")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")
DEFAULT_OBJECTIVE = {"classification": "accuracy", "regression": "rmse"}
# Whether a larger value is better, for HyperparameterTuner's objective_type.
MAXIMIZE = {"accuracy": True, "balanced_accuracy": True, "precision": True, "recall": True,
            "f1": True, "auc": True, "log_loss": False, "mse": False, "rmse": False,
            "mae": False, "r2": True}


def metric_names(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS


def label_codes(y_true, y_pred, classes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Labels as their position in ``classes`` (labels not in it get further codes).

    scikit-learn's metrics cannot type an object array of numbers or booleans
    (0/1 or True/False targets), so they are scored as integer codes.
    """
    codes: dict[Any, int] = {}
    for label in classes:
        codes.setdefault(label, len(codes))

    def encode(values) -> np.ndarray:
        return np.array([codes.setdefault(v, len(codes)) for v in values], dtype=np.int64)

    return encode(np.asarray(y_true, dtype=object).tolist()), \
        encode(np.asarray(y_pred, dtype=object).tolist())


def classification_metrics(y_true, y_pred, proba: np.ndarray | None,
                           classes: list[Any]) -> dict[str, float]:
    from sklearn import metrics as m

    y_true, y_pred = label_codes(y_true, y_pred, classes)
    n = len(classes)
    # Binary: the scores of the positive class (classes[1]); otherwise the macro average.
    scored = [1] if n == 2 else list(range(n))
    out = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "balanced_accuracy": m.balanced_accuracy_score(y_true, y_pred),
        "precision": m.precision_score(y_true, y_pred, average="macro", zero_division=0,
                                       labels=scored),
        "recall": m.recall_score(y_true, y_pred, average="macro", zero_division=0,
                                 labels=scored),
        "f1": m.f1_score(y_true, y_pred, average="macro", zero_division=0, labels=scored),
    }
    present = set(y_true.tolist())
    if proba is not None and len(present) > 1 and present <= set(range(n)):
        try:
            if n == 2:
                out["auc"] = m.roc_auc_score(y_true == 1, proba[:, 1])
            elif len(present) == n:
                out["auc"] = m.roc_auc_score(y_true, proba, multi_class="ovr",
                                             labels=list(range(n)))
            out["log_loss"] = m.log_loss(y_true, proba, labels=list(range(n)))
        except ValueError:
            pass
    return {k: float(v) for k, v in out.items() if math.isfinite(float(v))}


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    from sklearn import metrics as m

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    mse = m.mean_squared_error(y_true, y_pred)
    out = {"mse": mse, "rmse": math.sqrt(mse), "mae": m.mean_absolute_error(y_true, y_pred)}
    if len(y_true) > 1:
        out["r2"] = m.r2_score(y_true, y_pred)
    return {k: float(v) for k, v in out.items() if math.isfinite(float(v))}


def format_metric(split: str, name: str, value: float) -> str:
    return f"{split}:{name}={value:.6f};"


def metric_lines(results: dict[str, dict[str, float]], objective: str | None) -> list[str]:
    """``split:name=value;`` lines, the objective (``split:name``) last."""
    lines, last = [], None
    for split, values in results.items():
        for name, value in values.items():
            line = format_metric(split, name, value)
            if f"{split}:{name}" == objective:
                last = line
            else:
                lines.append(line)
    if last:
        lines.append(last)
    return lines


def metric_regex(split: str, name: str) -> str:
    """The MetricDefinitions regex for one metric, as documented in the README."""
    return f"{split}:{name}=([-+0-9.eE]+);"
