"""``processing evaluate``: score a trained model on the test split.

Inputs, each a ``ProcessingInput`` of its own:

- ``--model-dir`` — a training job's ``model.tar.gz`` (Pipelines hand over
  ``ModelArtifacts.S3ModelArtifacts``, which is that one file), or the
  unpacked model folder with ``model.joblib`` and ``metadata.json``;
- ``--test-dir`` — CSV or Parquet with the target column, as ``prepare``
  writes ``test/`` (a header row, target first).  Columns the model was
  trained without (``ignore_columns``) may be there too.

Output, in ``--output-dir``:

- ``evaluation.json`` — the model-quality report in the layout SageMaker
  uses for Model Monitor and for ``ModelMetrics`` of a registered model
  (Studio draws it): ``binary_classification_metrics``,
  ``multiclass_classification_metrics`` or ``regression_metrics``, each
  metric as ``{"value": x, "standard_deviation": s}``, with the names that
  layout gives each problem type.  Beside that section, ``quality_gate``
  holds one value that means the same for every problem: the share of the
  best constant prediction's error that the model removes.  A Pipelines
  ``ConditionStep`` reads it through ``JsonGet`` at ``quality_gate.value``,
  whatever the problem;
- ``confusion_matrix.svg`` (classification) or ``residuals.svg``
  (regression) — the same numbers as a picture, plain SVG that any browser
  shows, so the image carries no plotting library.
"""
from __future__ import annotations

import json
import logging
import math
import os
import warnings
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sklearn_byoc.common import compat
from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.disk import writing
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.metrics import classification_metrics, label_codes, regression_metrics
from sklearn_byoc.common.model_files import LoadedModel, ModelMetadata, load_model
from sklearn_byoc.common import cells
from sklearn_byoc.common.contract import HEADER_CHOICES
from sklearn_byoc.common.tables import Table
from sklearn_byoc.common.tables.columns import conform_features
from sklearn_byoc.common.tables.read import read_folder
from sklearn_byoc.common.tables.target import resolve_target
from sklearn_byoc.processing.prepare import ArgumentParser

log = logging.getLogger("processing")

REPORT_FILE = "evaluation.json"
BINARY = "binary_classification_metrics"
MULTICLASS = "multiclass_classification_metrics"
REGRESSION = "regression_metrics"
GATE = "quality_gate"
# The F-scores of SageMaker's model-quality layout: f0_5, f1, f2.
F_BETAS = {"f0_5": 0.5, "f1": 1.0, "f2": 2.0}
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
# What the log line of a finished evaluation shows.
SUMMARY = ("accuracy", "precision", "recall", "f1", "weighted_f1", "auc", "rmse", "mae", "r2")
# SageMaker's names for the problem types (Model Monitor's ProblemType) and a
# model package's Task.
PROBLEM_TYPES = {BINARY: "BinaryClassification", MULTICLASS: "MulticlassClassification",
                 REGRESSION: "Regression"}
TASKS = {BINARY: "CLASSIFICATION", MULTICLASS: "CLASSIFICATION", REGRESSION: "REGRESSION"}
# Points kept on the ROC and precision-recall curves; Studio draws them as lines.
CURVE_POINTS = 101


def build_parser(paths: Paths) -> ArgumentParser:
    base = paths.processing_dir
    parser = ArgumentParser(
        prog="processing evaluate",
        description="Score a trained model on held-out data and write evaluation.json.",
    )
    parser.add_argument("--model-dir", type=Path, default=base / "model",
                        help="folder with the training job's model.tar.gz, or with "
                             "model.joblib and metadata.json (default: %(default)s)")
    parser.add_argument("--test-dir", type=Path, default=base / "test",
                        help="folder of CSV or Parquet test data with the target column "
                             "(default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=base / "evaluation",
                        help="folder that receives evaluation.json and the picture "
                             "(default: %(default)s)")
    parser.add_argument("--target", default=None,
                        help="target column: name or 0-based index (default: the model's "
                             "target by name, or the first column when there is no header)")
    parser.add_argument("--header", choices=HEADER_CHOICES, default="auto",
                        help="whether the test files start with a header row (default: auto)")
    parser.add_argument("--bootstrap", type=int, default=100,
                        help="bootstrap resamples for each metric's standard deviation; 0 "
                             "reports it as NaN (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="random seed for the bootstrap")
    return parser


@dataclass
class Options:
    model_dir: Path
    test_dir: Path
    output_dir: Path
    target: str | None
    header: str
    bootstrap: int
    seed: int


def parse_options(argv: list[str], paths: Paths) -> Options:
    args = build_parser(paths).parse_args(argv)
    if args.bootstrap < 0:
        raise UserError(f"--bootstrap must be 0 or more, got {args.bootstrap}")
    return Options(args.model_dir, args.test_dir, args.output_dir, args.target, args.header,
                   args.bootstrap, args.seed)


# -- reading the test data ------------------------------------------------------
def read_test_data(options: Options, metadata: ModelMetadata) -> tuple[pd.DataFrame, pd.Series]:
    """The test rows as the model's features (typed as in training) and the target."""
    if not options.test_dir.is_dir():
        raise UserError(
            f"test data folder {options.test_dir} does not exist; give the job a "
            f"ProcessingInput with the test split (prepare writes it to test/) at that path, "
            "or pass --test-dir"
        )
    table = read_folder(options.test_dir, header=options.header, what="test data",
                        ignore=left_out(metadata))
    target = find_target(table, options, metadata)
    frame = table.frame
    if table.has_header:
        missing = [name for name in metadata.feature_names if name not in frame.columns]
        if missing:
            raise UserError(
                f"the test data under {options.test_dir} ({table.files[0]}) lacks feature "
                f"column(s) {', '.join(map(repr, missing[:20]))} that the model was trained "
                "on; score the test split that prepare wrote for the training data"
            )
        X = frame[metadata.feature_names]
    else:
        X = headerless_features(frame, target, metadata, options, table)
    y = frame[target]
    keep = y.notna()
    if not keep.any():
        raise UserError(f"the target column {target!r} of the test data under "
                        f"{options.test_dir} is empty in every row")
    if not keep.all():
        log.warning("dropping %d test row(s) with no target value", int((~keep).sum()))
    kinds = {f.name: f.kind for f in metadata.features}
    # Typed while the index still holds each row's place in the files, for messages.
    X = conform_features(X.loc[keep], kinds, table, "test data")
    return X.reset_index(drop=True), y.loc[keep].reset_index(drop=True)


def left_out(metadata: ModelMetadata):
    """The test data's columns the model was trained without (``ignore_columns``): by
    name under a header; by position in headerless files laid out like the training data."""
    def resolve(table: Table) -> list[str]:
        columns = [str(c) for c in table.frame.columns]
        ignored = set(metadata.ignored_columns)
        if table.has_header:
            return [c for c in columns if c in ignored]
        if ignored and len(columns) == len(metadata.columns):
            return [columns[i] for i, c in enumerate(metadata.columns) if c.role == "ignored"]
        return []
    return resolve


def headerless_features(frame: pd.DataFrame, target: str, metadata: ModelMetadata,
                        options: Options, table: Table) -> pd.DataFrame:
    """No names: the columns other than the target are the features, in training order
    (the layout prepare and SageMaker's algorithms use)."""
    X = frame.drop(columns=[target])
    n = len(metadata.features)
    if X.shape[1] == n:
        return X.set_axis(metadata.feature_names, axis=1)
    full = len(metadata.columns) - 1
    with_ignored = (f", or {full} with the columns it was trained without "
                    f"({', '.join(metadata.ignored_columns[:10])})"
                    if metadata.ignored_columns else "")
    raise UserError(
        f"the test data under {options.test_dir} ({table.files[0]}) has "
        f"{X.shape[1] + len(table.ignored)} feature columns besides the target but the model "
        f"expects {n} ({', '.join(metadata.feature_names[:20])}){with_ignored}; give "
        "the files a header row naming the columns"
    )


def find_target(table: Table, options: Options, metadata: ModelMetadata) -> str:
    if options.target is not None:
        return resolve_target(table, options.target, option="--target")
    columns = list(table.frame.columns)
    if not table.has_header:
        if table.ignored:  # laid out like the training data: the target where it was
            where = [c.role for c in metadata.columns].index("target")
            return table.all_columns[where]
        return columns[0]
    if metadata.target in columns:
        return metadata.target
    raise UserError(
        f"the test data under {options.test_dir} ({table.files[0]}) has no column "
        f"{metadata.target!r}, the target the model was trained to predict (columns: "
        f"{', '.join(map(str, columns[:20]))}); score data with the target column, or name "
        "it with --target"
    )


# -- the report -------------------------------------------------------------------
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


def counts_matrix(true_codes: np.ndarray, pred_codes: np.ndarray, k: int) -> np.ndarray:
    """k x k counts, rows the actual class, columns the predicted one."""
    return np.bincount(true_codes * k + pred_codes, minlength=k * k).reshape(k, k)


def _ratio(top: float, bottom: float) -> float:
    # scikit-learn's zero_division=0: a score with nothing to divide by is 0.
    return float(top / bottom) if bottom else 0.0


def _f_beta(precision: float, recall: float, beta: float) -> float:
    b2 = beta * beta
    return _ratio((1 + b2) * precision * recall, b2 * precision + recall)


def scores_from_counts(counts: np.ndarray, positive: int | None) -> dict[str, float]:
    """The layout's scores of one confusion matrix.

    ``positive`` set: the binary section (scores of that class, one against
    the rest); None: the multiclass section (averages weighted by support).
    """
    n = counts.sum()
    tp = np.diag(counts).astype(float)
    support = counts.sum(axis=1).astype(float)
    predicted = counts.sum(axis=0).astype(float)
    out = {"accuracy": _ratio(tp.sum(), n)}
    if positive is not None:
        hit, actual, said = tp[positive], support[positive], predicted[positive]
        precision, recall = _ratio(hit, said), _ratio(hit, actual)
        negatives = n - actual
        false_positive = said - hit
        out.update(precision=precision, recall=recall, true_positive_rate=recall,
                   false_negative_rate=_ratio(actual - hit, actual),
                   false_positive_rate=_ratio(false_positive, negatives),
                   true_negative_rate=_ratio(negatives - false_positive, negatives))
        for name, beta in F_BETAS.items():
            out[name] = _f_beta(precision, recall, beta)
        return out
    precision = np.array([_ratio(a, b) for a, b in zip(tp, predicted)])
    recall = np.array([_ratio(a, b) for a, b in zip(tp, support)])
    weights = support / n if n else support
    out["weighted_precision"] = float(weights @ precision)
    out["weighted_recall"] = float(weights @ recall)
    for name, beta in F_BETAS.items():
        per_class = np.array([_f_beta(p, r, beta) for p, r in zip(precision, recall)])
        out[f"weighted_{name}"] = float(weights @ per_class)
    return out


def best_constant_scores(counts: np.ndarray, positive: int | None) -> dict[str, float]:
    """Each score of the best constant classifier: the best over 'always predict c'."""
    support = counts.sum(axis=1)
    best: dict[str, float] = {}
    for c in range(len(support)):
        constant = np.zeros_like(counts)
        constant[:, c] = support
        for name, value in scores_from_counts(constant, positive).items():
            best[name] = max(value, best.get(name, value))
    return {f"{name}_best_constant_classifier": value for name, value in best.items()}


def classification_scores(true_codes: np.ndarray, pred_codes: np.ndarray, k: int,
                          positive: int | None) -> dict[str, float]:
    counts = counts_matrix(true_codes, pred_codes, k)
    scores = scores_from_counts(counts, positive)
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
        scores = classification_scores(true_codes[rows], pred_codes[rows], k, positive)
        extras = classification_metrics(y_true[rows], y_pred[rows],
                                        None if proba is None else proba[rows], classes)
        scores.update({name: extras[name] for name in CLASSIFICATION_EXTRAS if name in extras})
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


def predict(loaded: LoadedModel, X: pd.DataFrame):
    model, metadata = loaded.model, loaded.metadata
    predictions = model.predict(X)
    proba = None
    if metadata.is_classifier and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=float)
    return predictions, proba


def model_classes(loaded: LoadedModel) -> list[Any]:
    """Class labels in predict_proba's column order, as train recorded them."""
    fitted = getattr(loaded.model, "classes_", None)
    if fitted is not None:
        return [cells.label_value(c) for c in fitted]
    return list(loaded.metadata.classes or [])


def build_report(loaded: LoadedModel, X: pd.DataFrame, y: pd.Series, *, rounds: int,
                 seed: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The evaluation report, and the typed truth and predictions it was computed from."""
    metadata = loaded.metadata
    predictions, proba = predict(loaded, X)
    if metadata.is_classifier:
        classes = model_classes(loaded)
        # The trainer stores labels as JSON-friendly values (1.0 read from CSV is 1).
        y_true = cells.label_column(np.asarray(y, dtype=object))
        y_pred = cells.label_column(np.asarray(predictions, dtype=object))
        report = classification_report(y_true, y_pred, proba, classes, rounds=rounds, seed=seed)
        return report, y_true, y_pred
    try:
        y_true = pd.to_numeric(y, errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError):
        raise UserError(
            f"the model is a regression model but the test target column {metadata.target!r} "
            f"holds text (e.g. {y.iloc[0]!r}); score data whose target is numeric"
        ) from None
    y_pred = np.asarray(predictions, dtype=float)
    return regression_report(y_true, y_pred, rounds=rounds, seed=seed), y_true, y_pred


# -- the picture --------------------------------------------------------------------
def confusion_svg(matrix: dict[str, dict[str, int]], title: str) -> str:
    """The confusion matrix as a grid of shaded cells with their counts."""
    labels = list(matrix)
    n = len(labels)
    widest = max(len(_short(label)) for label in labels)
    cell, left, top = 64, 56 + 8 * widest, 96
    width, height = max(left + n * cell + 24, 9 * len(title) + 40), top + n * cell + 24
    peak = max([count for row in matrix.values() for count in row.values()] + [1])
    parts = [
        f'<text x="{width / 2:.0f}" y="24" text-anchor="middle" font-size="16">'
        f"{escape(title)}</text>",
        f'<text x="{left + n * cell / 2:.0f}" y="{top - 44}" text-anchor="middle">'
        "predicted</text>",
        f'<text x="24" y="{top + n * cell / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 24 {top + n * cell / 2:.0f})">actual</text>',
    ]
    for j, label in enumerate(labels):
        parts.append(f'<text x="{left + j * cell + cell / 2:.0f}" y="{top - 10}" '
                     f'text-anchor="middle">{escape(_short(label))}</text>')
    for i, actual in enumerate(labels):
        y = top + i * cell
        parts.append(f'<text x="{left - 10}" y="{y + cell / 2 + 5:.0f}" text-anchor="end">'
                     f"{escape(_short(actual))}</text>")
        for j, predicted in enumerate(labels):
            count = matrix[actual][predicted]
            shade = count / peak
            fill = f"rgb({255 - int(200 * shade)},{255 - int(140 * shade)},255)"
            ink = "#fff" if shade > 0.6 else "#000"
            x = left + j * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" '
                         f'fill="{fill}" stroke="#888"><title>actual {escape(str(actual))}, '
                         f"predicted {escape(str(predicted))}: {count}</title></rect>")
            parts.append(f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 5:.0f}" '
                         f'text-anchor="middle" fill="{ink}">{count}</text>')
    return _svg(width, height, parts)


def residuals_svg(y_true: np.ndarray, y_pred: np.ndarray, title: str,
                  max_points: int = 2000) -> str:
    """Residual (actual - predicted) against predicted value; a sample of the rows."""
    if len(y_true) > max_points:
        rows = np.random.default_rng(0).choice(len(y_true), max_points, replace=False)
        y_true, y_pred = y_true[rows], y_pred[rows]
    residual = y_true - y_pred
    width, height, left, top, plot_w, plot_h = 560, 400, 70, 40, 460, 300
    x_lo, x_hi = _bounds(y_pred)
    r_peak = max(float(np.max(np.abs(residual))) if len(residual) else 0.0, 1e-12)

    def px(v):
        return left + (v - x_lo) / (x_hi - x_lo) * plot_w

    def py(r):
        return top + plot_h / 2 - r / r_peak * (plot_h / 2)

    parts = [
        f'<text x="{width / 2:.0f}" y="24" text-anchor="middle" font-size="16">'
        f"{escape(title)}</text>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#888"/>',
        f'<line x1="{left}" y1="{py(0):.1f}" x2="{left + plot_w}" y2="{py(0):.1f}" '
        'stroke="#c33"/>',
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 14}" text-anchor="middle">'
        "predicted</text>",
        f'<text x="18" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 18 {top + plot_h / 2:.0f})">actual - predicted</text>',
        f'<text x="{left}" y="{top + plot_h + 18}" text-anchor="middle">{x_lo:.4g}</text>',
        f'<text x="{left + plot_w}" y="{top + plot_h + 18}" text-anchor="middle">'
        f"{x_hi:.4g}</text>",
        f'<text x="{left - 6}" y="{top + 5}" text-anchor="end">{r_peak:.3g}</text>',
        f'<text x="{left - 6}" y="{top + plot_h + 5}" text-anchor="end">{-r_peak:.3g}</text>',
    ]
    for p, r in zip(y_pred.tolist(), residual.tolist()):
        parts.append(f'<circle cx="{px(p):.1f}" cy="{py(r):.1f}" r="2.5" '
                     'fill="#36c" fill-opacity="0.5"/>')
    return _svg(width, height, parts)


def _bounds(values: np.ndarray) -> tuple[float, float]:
    lo, hi = (float(np.min(values)), float(np.max(values))) if len(values) else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _short(label: Any, limit: int = 16) -> str:
    text = str(label)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _svg(width: int, height: int, parts: list[str]) -> str:
    body = "\n  ".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">\n'
            f'  <rect width="{width}" height="{height}" fill="#fff"/>\n  {body}\n</svg>\n')


# -- the stage ----------------------------------------------------------------------
def write_text(path: Path, text: str) -> None:
    """Write under a temporary name, then rename: never a half-written file."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with writing(path.parent, "the evaluation", partial=partial,
                     needed=len(text.encode("utf-8"))):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def _shown(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def evaluate(argv: list[str], paths: Paths) -> dict[str, Path]:
    options = parse_options(argv, paths)
    loaded = load_model(options.model_dir)
    metadata = loaded.metadata
    X, y = read_test_data(options, metadata)
    report, y_true, y_pred = build_report(loaded, X, y, rounds=options.bootstrap,
                                          seed=options.seed)

    written = {"report": options.output_dir / REPORT_FILE}
    write_text(written["report"], json.dumps(report, indent=2) + "\n")
    title = f"{metadata.model or 'model'} on {len(y_true)} test rows"
    section = next(iter(report.values()))
    if metadata.is_classifier:
        written["picture"] = options.output_dir / "confusion_matrix.svg"
        write_text(written["picture"], confusion_svg(section["confusion_matrix"], title))
    else:
        written["picture"] = options.output_dir / "residuals.svg"
        write_text(written["picture"], residuals_svg(y_true, y_pred, title))

    summary = ", ".join(f"{name} {section[name]['value']:.4f}" for name in SUMMARY
                        if isinstance(section.get(name, {}).get("value"), float))
    gate = report[GATE]
    log.info("evaluated %s on %d test rows (%s): %s; quality gate %s (%s %s, baseline %s)",
             metadata.estimator or "the model", len(y_true), gate["problem_type"], summary,
             _shown(gate["value"]), gate["error"].split(" (")[0], _shown(gate["model_error"]),
             _shown(gate["baseline_error"]))
    for name, path in written.items():
        log.info("wrote %s -> %s", name, path)
    return written
