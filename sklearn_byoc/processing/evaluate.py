"""``processing evaluate``: score a trained model on the test split.

Inputs, each a ``ProcessingInput`` of its own:

- ``--model-dir`` — a training job's ``model.tar.gz`` (Pipelines hand over
  ``ModelArtifacts.S3ModelArtifacts``, which is that one file), or the
  unpacked model folder with ``model.joblib`` and ``metadata.json``;
- ``--test-dir`` — CSV with the target column, as ``prepare`` writes
  ``test/`` (a header row, target first).

Output, in ``--output-dir``:

- ``evaluation.json`` — the model-quality report in the layout SageMaker
  uses for Model Monitor and for ``ModelMetrics`` of a registered model
  (Studio draws it): ``binary_classification_metrics``,
  ``multiclass_classification_metrics`` or ``regression_metrics``, each
  metric as ``{"value": x, "standard_deviation": s}``.  A Pipelines
  ``ConditionStep`` reads it through ``JsonGet``, e.g.
  ``binary_classification_metrics.accuracy.value``;
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
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.metrics import classification_metrics, regression_metrics
from sklearn_byoc.common.model_files import LoadedModel, ModelMetadata, load_model
from sklearn_byoc.common.tables import HEADER_CHOICES, Table, read_csv_folder, resolve_target
from sklearn_byoc.processing.prepare import ArgumentParser

log = logging.getLogger("processing")

REPORT_FILE = "evaluation.json"
BINARY = "binary_classification_metrics"
MULTICLASS = "multiclass_classification_metrics"
REGRESSION = "regression_metrics"
# Metrics the report carries, by task; classification_metrics gives the rest
# only when they are defined (AUC needs probabilities and two classes present).
CLASSIFICATION_REPORTED = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc",
                           "log_loss")
REGRESSION_REPORTED = ("mse", "rmse", "mae", "r2")
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
                        help="folder of CSV test data with the target column "
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
    table = read_csv_folder(options.test_dir, header=options.header, what="test data")
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
        # No names: the columns other than the target are the features, in
        # training order (the layout prepare and SageMaker's algorithms use).
        X = frame.drop(columns=[target])
        if X.shape[1] != len(metadata.features):
            raise UserError(
                f"the test data under {options.test_dir} ({table.files[0]}) has "
                f"{X.shape[1]} feature columns besides the target but the model expects "
                f"{len(metadata.features)} ({', '.join(metadata.feature_names[:20])}); give "
                "the files a header row naming the columns"
            )
        X = X.set_axis(metadata.feature_names, axis=1)
    y = frame[target]
    keep = y.notna()
    if not keep.any():
        raise UserError(f"the target column {target!r} of the test data under "
                        f"{options.test_dir} is empty in every row")
    if not keep.all():
        log.warning("dropping %d test row(s) with no target value", int((~keep).sum()))
    X, y = X.loc[keep].reset_index(drop=True), y.loc[keep].reset_index(drop=True)
    return type_features(X, metadata, table), y


def find_target(table: Table, options: Options, metadata: ModelMetadata) -> str:
    if options.target is not None:
        return resolve_target(table, options.target, option="--target")
    columns = list(table.frame.columns)
    if not table.has_header:
        return columns[0]
    if metadata.target in columns:
        return metadata.target
    raise UserError(
        f"the test data under {options.test_dir} ({table.files[0]}) has no column "
        f"{metadata.target!r}, the target the model was trained to predict (columns: "
        f"{', '.join(map(str, columns[:20]))}); score data with the target column, or name "
        "it with --target"
    )


def type_features(X: pd.DataFrame, metadata: ModelMetadata, table: Table) -> pd.DataFrame:
    """Type each column the way the training data was typed (metadata.json's kinds)."""
    from sklearn_byoc.train.trainer import as_categorical_text

    kinds = {f.name: f.kind for f in metadata.features}
    X = X.copy()
    for name, kind in kinds.items():
        if kind != "numeric" or pd.api.types.is_numeric_dtype(X[name]):
            continue
        numbers = pd.to_numeric(X[name], errors="coerce")
        bad = X[name].notna() & numbers.isna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(
                f"feature {name!r} is numeric in the model but the test data holds "
                f"{X[name].iloc[first]!r} (first at {table.where(first)}); fix the value or "
                "leave the cell empty"
            )
        X[name] = numbers
    return as_categorical_text(X, kinds)


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


def classification_report(y_true, y_pred, proba, classes: list[Any], *, rounds: int,
                          seed: int) -> dict[str, Any]:
    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    values = classification_metrics(y_true, y_pred, proba, classes)

    def compute(rows):
        return classification_metrics(y_true[rows], y_pred[rows],
                                      None if proba is None else proba[rows], classes)

    std = bootstrap_std(compute, len(y_true), rounds, seed)
    section: dict[str, Any] = {name: _entry(values[name], std.get(name))
                               for name in CLASSIFICATION_REPORTED if name in values}
    seen = set(classes)
    labels = list(classes) + [v for v in dict.fromkeys(y_true.tolist() + y_pred.tolist())
                              if v not in seen]
    section["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels)
    binary = len(classes) == 2
    if binary and proba is not None:
        section.update(curves(y_true, classes[1], proba[:, 1]))
    return {BINARY if binary else MULTICLASS: section}


def regression_report(y_true, y_pred, *, rounds: int, seed: int) -> dict[str, Any]:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    values = regression_metrics(y_true, y_pred)
    std = bootstrap_std(lambda rows: regression_metrics(y_true[rows], y_pred[rows]),
                        len(y_true), rounds, seed)
    return {REGRESSION: {name: _entry(values[name], std.get(name))
                         for name in REGRESSION_REPORTED if name in values}}


def predict(loaded: LoadedModel, X: pd.DataFrame):
    model, metadata = loaded.model, loaded.metadata
    predictions = model.predict(X)
    proba = None
    if metadata.is_classifier and hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=float)
    return predictions, proba


def model_classes(loaded: LoadedModel) -> list[Any]:
    """Class labels in predict_proba's column order, as train recorded them."""
    from sklearn_byoc.train.trainer import _label

    fitted = getattr(loaded.model, "classes_", None)
    if fitted is not None:
        return [_label(c) for c in fitted]
    return list(loaded.metadata.classes or [])


def build_report(loaded: LoadedModel, X: pd.DataFrame, y: pd.Series, *, rounds: int,
                 seed: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """The evaluation report, and the typed truth and predictions it was computed from."""
    from sklearn_byoc.train.trainer import _label

    metadata = loaded.metadata
    predictions, proba = predict(loaded, X)
    if metadata.is_classifier:
        classes = model_classes(loaded)
        # The trainer stores labels as JSON-friendly values (1.0 read from CSV is 1).
        y_true = np.asarray([_label(v) for v in y], dtype=object)
        y_pred = np.asarray([_label(v) for v in predictions], dtype=object)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


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

    summary = ", ".join(f"{name} {entry['value']:.4f}" for name, entry in section.items()
                        if isinstance(entry, dict) and isinstance(entry.get("value"), float))
    log.info("evaluated %s on %d test rows: %s", metadata.estimator or "the model", len(y_true),
             summary)
    for name, path in written.items():
        log.info("wrote %s -> %s", name, path)
    return written
