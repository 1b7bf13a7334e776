"""The evaluation report: SageMaker's model-quality layout of a model's scores on test rows.

``binary_classification_metrics``, ``multiclass_classification_metrics`` or
``regression_metrics``, each metric as ``{"value": x, "standard_deviation": s}`` (the
standard deviation over bootstrap resamples of the rows), beside ``quality_gate``: the share
of the best constant prediction's error the model removes, one value that means the same
for every problem.  Every score comes from ``common/metrics.py``.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from sklearn_byoc.common import compat
from sklearn_byoc.common.metrics import (counts_matrix, label_codes, line_scores,
                                         probability_scores, regression_metrics, report_scores)

BINARY = "binary_classification_metrics"
MULTICLASS = "multiclass_classification_metrics"
REGRESSION = "regression_metrics"
GATE = "quality_gate"
# The names SageMaker's model-quality layout (Model Monitor, a model
# package's ModelQuality statistics) lists for each section, in its order.
# Binary scores are those of the positive class, the model's second class;
# multiclass ones are averages over the classes weighted by their share of
# the test rows.  "best_constant_classifier": the constant prediction that
# scores best on the test rows.
BINARY_REPORTED = ("recall", "precision", "accuracy", "recall_best_constant_classifier",
                   "precision_best_constant_classifier", "accuracy_best_constant_classifier",
                   "true_positive_rate", "true_negative_rate", "false_positive_rate",
                   "false_negative_rate", "auc", "f0_5", "f1", "f2",
                   "f0_5_best_constant_classifier", "f1_best_constant_classifier",
                   "f2_best_constant_classifier")
MULTICLASS_REPORTED = ("accuracy", "weighted_recall", "weighted_precision", "weighted_f0_5",
                       "weighted_f1", "weighted_f2", "accuracy_best_constant_classifier",
                       "weighted_recall_best_constant_classifier",
                       "weighted_precision_best_constant_classifier",
                       "weighted_f0_5_best_constant_classifier",
                       "weighted_f1_best_constant_classifier",
                       "weighted_f2_best_constant_classifier")
# Added to both classification sections (auc is the layout's own in the
# binary one); none of these names means something else in the layout.
# Macro precision / recall / f1 are left out: the layout's bare names are
# the positive class's scores.
CLASSIFICATION_EXTRAS = ("balanced_accuracy", "auc", "log_loss")
REGRESSION_REPORTED = ("mae", "mse", "rmse", "r2")
# SageMaker's names for the problem types (Model Monitor's ProblemType) and a
# model package's Task.
PROBLEM_TYPES = {BINARY: "BinaryClassification", MULTICLASS: "MulticlassClassification",
                 REGRESSION: "Regression"}
TASKS = {BINARY: "CLASSIFICATION", MULTICLASS: "CLASSIFICATION", REGRESSION: "REGRESSION"}
# Points kept on the ROC and precision-recall curves; Studio draws them as lines.
CURVE_POINTS = 101


def _entry(value: float, std: float | None) -> dict[str, Any]:
    """One metric in SageMaker's model-quality layout; NaN spelled as the string "NaN"."""
    return {"value": _number(value),
            "standard_deviation": "NaN" if std is None or not math.isfinite(std) else std}


def _number(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else "NaN"


def bootstrap_std(compute, n: int, rounds: int, seed: int) -> dict[str, float]:
    """Standard deviation of each metric over ``rounds`` resamples of the rows."""
    if rounds <= 0 or n < 2:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    # The inputs were checked once for the full set; a resample may lack a
    # class, which sklearn warns about on every round.
    with compat.fast_config(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(rounds):
            rows = rng.integers(0, n, n)
            for name, value in compute(rows).items():
                samples.setdefault(name, []).append(value)
    # A metric undefined in some resamples (AUC with one class drawn) is
    # judged on the resamples where it is defined, if they are most of them.
    return {name: float(np.std(values, ddof=1)) for name, values in samples.items()
            if len(values) >= max(2, rounds // 2)}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray,
                     labels: list[Any]) -> dict[str, dict[str, int]]:
    """{actual: {predicted: count}} with every label on both sides, keys as text."""
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for actual, predicted in zip(y_true.tolist(), y_pred.tolist()):
        counts[index[actual], index[predicted]] += 1
    return {str(a): {str(p): int(counts[i, j]) for j, p in enumerate(labels)}
            for i, a in enumerate(labels)}


def curves(y_true: np.ndarray, positive: Any, scores: np.ndarray) -> dict[str, Any]:
    """ROC and precision-recall curves for a binary model, thinned to CURVE_POINTS."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    truth = y_true == positive
    if truth.all() or not truth.any():
        return {}
    fpr, tpr, _ = roc_curve(truth, scores)
    precision, recall, _ = precision_recall_curve(truth, scores)

    def thin(*arrays):
        keep = np.unique(np.linspace(0, len(arrays[0]) - 1, CURVE_POINTS).round().astype(int))
        return [[round(float(v), 6) for v in a[keep]] for a in arrays]

    fpr, tpr = thin(fpr, tpr)
    precision, recall = thin(precision, recall)
    return {
        "receiver_operating_characteristic_curve": {"false_positive_rates": fpr,
                                                    "true_positive_rates": tpr},
        "precision_recall_curve": {"precisions": precision, "recalls": recall},
    }


def best_constant_scores(counts: np.ndarray, positive: int | None) -> dict[str, float]:
    """Each score of the best constant classifier: the best over 'always predict c'."""
    support = counts.sum(axis=1)
    best: dict[str, float] = {}
    for c in range(len(support)):
        constant = np.zeros_like(counts)
        constant[:, c] = support
        for name, value in report_scores(constant, positive).items():
            best[name] = max(value, best.get(name, value))
    return {f"{name}_best_constant_classifier": value for name, value in best.items()}


def classification_scores(counts: np.ndarray, positive: int | None) -> dict[str, float]:
    scores = report_scores(counts, positive)
    scores.update(best_constant_scores(counts, positive))
    # The gate: how much of the best constant's misclassification rate is gone.
    scores[GATE] = gate_value(1 - scores["accuracy"],
                              1 - scores["accuracy_best_constant_classifier"])
    return scores


def gate_value(model_error: float, baseline_error: float) -> float:
    """1 - model error / baseline error: 0 is no better than the baseline, 1 is no error.

    A test set whose target never varies leaves the baseline without error:
    nothing can be shown to beat it, so the gate value is 0.
    """
    if baseline_error <= 0:
        return 0.0
    return 1.0 - model_error / baseline_error


def classification_report(y_true, y_pred, proba, classes: list[Any], *, rounds: int,
                          seed: int) -> dict[str, Any]:
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    seen = set(classes)
    labels = list(classes) + [v for v in dict.fromkeys(y_true.tolist() + y_pred.tolist())
                              if v not in seen]
    true_codes, pred_codes = label_codes(y_true, y_pred, labels)
    binary = len(classes) == 2
    positive = 1 if binary else None
    k = len(labels)
    names = BINARY_REPORTED if binary else MULTICLASS_REPORTED

    def compute(rows):
        counts = counts_matrix(true_codes[rows], pred_codes[rows], k)
        scores = classification_scores(counts, positive)
        # balanced_accuracy from the same counts; AUC and log loss from the probabilities.
        scores["balanced_accuracy"] = line_scores(counts, len(classes))["balanced_accuracy"]
        scores.update(probability_scores(true_codes[rows],
                                         None if proba is None else proba[rows], len(classes)))
        return scores

    values = compute(np.arange(len(y_true)))
    std = bootstrap_std(compute, len(y_true), rounds, seed)
    section: dict[str, Any] = {"confusion_matrix": confusion_matrix(y_true, y_pred, labels)}
    for name in names + tuple(n for n in CLASSIFICATION_EXTRAS if n not in names):
        if name in values:
            section[name] = _entry(values[name], std.get(name))
    if binary and proba is not None:
        section.update(curves(y_true, classes[1], proba[:, 1]))
    key = BINARY if binary else MULTICLASS
    counts = np.bincount(true_codes, minlength=k)
    majority = labels[int(np.argmax(counts))]
    gate = {
        "error": "misclassification rate (1 - accuracy)",
        "model_error": _number(1 - values["accuracy"]),
        "baseline": f"always {majority!r}, the most frequent class of the test rows",
        "baseline_error": _number(1 - values["accuracy_best_constant_classifier"]),
    }
    return {key: section, GATE: gate_section(key, values[GATE], std.get(GATE), gate)}


def gate_section(key: str, value: float, std: float | None, details: dict) -> dict[str, Any]:
    return {**_entry(value, std),
            "definition": "1 - model error / error of the best constant prediction, on the "
                          "test rows: 0 is no better than that constant, 1 is no error",
            **details, "problem_type": PROBLEM_TYPES[key], "task": TASKS[key]}


def regression_report(y_true, y_pred, *, rounds: int, seed: int) -> dict[str, Any]:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)

    def compute(rows):
        scores = regression_metrics(y_true[rows], y_pred[rows])
        # The best constant prediction under squared error is the mean, whose
        # mean squared error is the variance: the gate value is R^2.
        scores[GATE] = gate_value(scores["mse"], float(np.var(y_true[rows])))
        return scores

    values = compute(np.arange(len(y_true)))
    std = bootstrap_std(compute, len(y_true), rounds, seed)
    section = {name: _entry(values[name], std.get(name))
               for name in REGRESSION_REPORTED if name in values}
    mean = float(np.mean(y_true)) if len(y_true) else float("nan")
    gate = {"error": "mean squared error",
            "model_error": _number(values["mse"]),
            "baseline": f"always {mean:.6g}, the mean of the test target",
            "baseline_error": _number(float(np.var(y_true)) if len(y_true) else float("nan"))}
    return {REGRESSION: section, GATE: gate_section(REGRESSION, values[GATE], std.get(GATE),
                                                     gate)}
