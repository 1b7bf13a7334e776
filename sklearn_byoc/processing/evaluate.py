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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sklearn_byoc.common import cells
from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.disk import writing
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.model_files import LoadedModel, ModelMetadata, load_model
from sklearn_byoc.common.tables import Table
from sklearn_byoc.common.tables.columns import conform_features
from sklearn_byoc.common.tables.read import read_folder
from sklearn_byoc.common.tables.target import resolve_target
from sklearn_byoc.processing.picture import confusion_svg, residuals_svg
from sklearn_byoc.processing.prepare import ArgumentParser, add_table_options
from sklearn_byoc.processing.report import GATE, classification_report, regression_report

log = logging.getLogger("processing")

REPORT_FILE = "evaluation.json"
# What the log line of a finished evaluation shows.
SUMMARY = ("accuracy", "precision", "recall", "f1", "weighted_f1", "auc", "rmse", "mae", "r2")


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
    add_table_options(parser, "the model's target by name, or the first column when there "
                              "is no header", "test files")
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
    # Typed while the index still holds each row's place in the files, for messages.
    X = conform_features(X.loc[keep], metadata.kinds, table, "test data", metadata.date_parts)
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


# -- scoring -------------------------------------------------------------------------
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
