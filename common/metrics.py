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


def classification_metrics(y_true, y_pred, proba: np.ndarray | None,
                           classes: list[Any]) -> dict[str, float]:
    from sklearn import metrics as m

    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    extra = {"pos_label": classes[1]} if binary else {}
    out = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "balanced_accuracy": m.balanced_accuracy_score(y_true, y_pred),
        "precision": m.precision_score(y_true, y_pred, average=average, zero_division=0,
                                       labels=classes if not binary else None, **extra),
        "recall": m.recall_score(y_true, y_pred, average=average, zero_division=0,
                                 labels=classes if not binary else None, **extra),
        "f1": m.f1_score(y_true, y_pred, average=average, zero_division=0,
                         labels=classes if not binary else None, **extra),
    }
    present = set(y_true.tolist())
    if proba is not None and len(present) > 1 and present <= set(classes):
        try:
            if binary:
                out["auc"] = m.roc_auc_score(y_true == classes[1], proba[:, 1])
            elif len(present) == len(classes):
                out["auc"] = m.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
            out["log_loss"] = m.log_loss(y_true, proba, labels=classes)
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
