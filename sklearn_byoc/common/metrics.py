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


# -- classification: one confusion matrix, every score --------------------------------------
# F-scores the evaluation report gives (F1 is the one train prints).
F_BETAS = {"f0_5": 0.5, "f1": 1.0, "f2": 2.0}


def counts_matrix(true_codes: np.ndarray, pred_codes: np.ndarray, k: int) -> np.ndarray:
    """k x k counts, rows the actual class, columns the predicted one."""
    return np.bincount(true_codes * k + pred_codes, minlength=k * k).reshape(k, k)


def _ratio(top: float, bottom: float) -> float:
    # scikit-learn's zero_division=0: a score with nothing to divide by is 0.
    return float(top / bottom) if bottom else 0.0


def _f_beta(precision: float, recall: float, beta: float) -> float:
    b2 = beta * beta
    return _ratio((1 + b2) * precision * recall, b2 * precision + recall)


def _per_class(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, support) of each class of a confusion matrix."""
    tp = np.diag(counts).astype(float)
    support = counts.sum(axis=1).astype(float)
    predicted = counts.sum(axis=0).astype(float)
    precision = np.array([_ratio(a, b) for a, b in zip(tp, predicted)])
    recall = np.array([_ratio(a, b) for a, b in zip(tp, support)])
    return precision, recall, support


def line_scores(counts: np.ndarray, n_classes: int) -> dict[str, float]:
    """train's metric lines from a confusion matrix whose first ``n_classes`` rows are the
    model's classes (further rows: labels the model never saw): accuracy, balanced
    accuracy, and precision, recall and F1 of the positive class (binary: ``classes[1]``)
    or their macro average over the model's classes."""
    precision, recall, support = _per_class(counts)
    scored = [1] if n_classes == 2 else list(range(n_classes))
    f1 = np.array([_f_beta(p, r, 1.0) for p, r in zip(precision, recall)])
    return {"accuracy": _ratio(np.trace(counts), counts.sum()),
            "balanced_accuracy": float(np.mean(recall[support > 0])),
            "precision": float(np.mean(precision[scored])),
            "recall": float(np.mean(recall[scored])),
            "f1": float(np.mean(f1[scored]))}


def report_scores(counts: np.ndarray, positive: int | None) -> dict[str, float]:
    """The evaluation report's scores of one confusion matrix.

    ``positive`` set: the binary section (scores of that class, one against the rest);
    None: the multiclass section (averages weighted by support).
    """
    n = counts.sum()
    precision, recall, support = _per_class(counts)
    out = {"accuracy": _ratio(np.trace(counts), n)}
    if positive is not None:
        hit = float(counts[positive, positive])
        actual, said = support[positive], float(counts[:, positive].sum())
        negatives = n - actual
        false_positive = said - hit
        out.update(precision=precision[positive], recall=recall[positive],
                   true_positive_rate=recall[positive],
                   false_negative_rate=_ratio(actual - hit, actual),
                   false_positive_rate=_ratio(false_positive, negatives),
                   true_negative_rate=_ratio(negatives - false_positive, negatives))
        for name, beta in F_BETAS.items():
            out[name] = _f_beta(precision[positive], recall[positive], beta)
        return {k: float(v) for k, v in out.items()}
    weights = support / n if n else support
    out["weighted_precision"] = float(weights @ precision)
    out["weighted_recall"] = float(weights @ recall)
    for name, beta in F_BETAS.items():
        per_class = np.array([_f_beta(p, r, beta) for p, r in zip(precision, recall)])
        out[f"weighted_{name}"] = float(weights @ per_class)
    return out


def probability_scores(true_codes: np.ndarray, proba: np.ndarray | None,
                       n_classes: int) -> dict[str, float]:
    """AUC (binary: of ``classes[1]``; otherwise one-vs-rest, macro) and log loss, where the
    rows' labels are all the model's classes and more than one is present."""
    from sklearn import metrics as m

    present = set(true_codes.tolist())
    out: dict[str, float] = {}
    if proba is None or len(present) < 2 or not present <= set(range(n_classes)):
        return out
    try:
        if n_classes == 2:
            out["auc"] = m.roc_auc_score(true_codes == 1, proba[:, 1])
        elif len(present) == n_classes:
            out["auc"] = m.roc_auc_score(true_codes, proba, multi_class="ovr",
                                         labels=list(range(n_classes)))
        out["log_loss"] = m.log_loss(true_codes, proba, labels=list(range(n_classes)))
    except ValueError:
        pass
    return out


def classification_metrics(y_true, y_pred, proba: np.ndarray | None,
                           classes: list[Any]) -> dict[str, float]:
    """The classification metric lines for these rows."""
    true_codes, pred_codes = label_codes(y_true, y_pred, classes)
    k = max(len(classes), int(true_codes.max(initial=-1)) + 1,
            int(pred_codes.max(initial=-1)) + 1)
    out = line_scores(counts_matrix(true_codes, pred_codes, k), len(classes))
    out.update(probability_scores(true_codes, proba, len(classes)))
    return {k_: float(v) for k_, v in out.items() if math.isfinite(float(v))}


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
