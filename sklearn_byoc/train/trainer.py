"""The built-in trainer: tabular CSV or Parquet in, a fitted scikit-learn pipeline out.

Its hyperparameters arrive typed, as one :class:`hyperparameters.Settings`
(``train/hyperparameters.py`` holds the table of the trainer's own keys).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sklearn_byoc.common import cells, compat
from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.dates import column_kinds
from sklearn_byoc.common.disk import writing
from sklearn_byoc.common.fast_preprocess import compile_preprocess
from sklearn_byoc.common.memory import release_free_memory
from sklearn_byoc.common.errors import HyperparameterError, UserError
from sklearn_byoc.common.metrics import (DEFAULT_OBJECTIVE, classification_metrics, metric_lines,
                                         metric_names, regression_metrics)
from sklearn_byoc.common.model_files import (Column, Feature, ModelMetadata, library_versions,
                                             remove_model, save_model)
from sklearn_byoc.common.tables import Table
from sklearn_byoc.common.tables import select
from sklearn_byoc.common.tables.columns import conform_features, identifier_columns
from sklearn_byoc.common.tables.read import read_folder
from sklearn_byoc.common.tables.target import infer_task, resolve_target
from sklearn_byoc.train import data, small_data
from sklearn_byoc.train.estimators import build_estimator, check_task
from sklearn_byoc.train.estimators import is_invalid_parameter
from sklearn_byoc.train.hyperparameters import Settings

log = logging.getLogger("train")


@dataclass
class TrainingResult:
    metadata: ModelMetadata
    metrics: dict[str, dict[str, float]]
    metric_lines: list[str]


def uses_native_categories(estimator, settings: Settings) -> bool:
    """HistGradientBoosting splits on category codes itself, unless told otherwise."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    return isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)) \
        and "categorical_features" not in settings.given


def build_pipeline(model_step, X: pd.DataFrame, kinds: dict[str, str], *, scale: bool,
                   native_categories: bool = False, sparse: bool = False,
                   categories: dict[str, list] | None = None):
    """Imputation and encoding in front of ``model_step``, so the pipeline takes raw rows.

    Categorical columns become one-hot columns (sparse ones for a linear model),
    or, for an estimator with native categorical support, one code per column:
    five million rows with ten 20-level columns take 10 float64 columns instead
    of 200.  ``categories`` (column -> its levels) fixes the encoder's levels where the
    rows it is fitted on are a sample of the data.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    numeric = [c for c in X.columns if kinds[c] == "numeric"]
    categorical = [c for c in X.columns if kinds[c] == "categorical"]
    numeric_steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))

    def encoding(encoder) -> Pipeline:
        return Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing",
                                                  keep_empty_features=True)),
                         ("encode", encoder)])

    def levels(columns: list[str]) -> dict:
        return {"categories": [categories[c] for c in columns]} if categories else {}

    numeric_step = Pipeline(numeric_steps)
    groups = []  # (name, encoding, columns)
    if native_categories:
        # HistGradientBoosting takes missing values itself (each split learns which side
        # they go): numbers go on as they are, a missing category is NaN, and so is one
        # unseen in training.
        numeric_step = "passthrough"
        # It takes at most max_bins categories per feature: in a column with more, the
        # rarest share one code (max_categories, which makes scikit-learn count every cell
        # in Python, so it is set only where needed).
        bins = int(getattr(model_step, "max_bins", 255))
        counts = {c: len(categories[c]) if categories else X[c].nunique() for c in categorical}
        few = [c for c in categorical if counts[c] <= bins]
        many = [c for c in categorical if counts[c] > bins]
        options = {"handle_unknown": "use_encoded_value", "unknown_value": np.nan,
                   "encoded_missing_value": np.nan}
        if few:
            groups.append(("categorical", OrdinalEncoder(**options, **levels(few)), few))
        if many:
            groups.append(("categorical_many",
                           compat.ordinal_encoder(bins, **options, **levels(many)), many))
        model_step.set_params(categorical_features=list(
            range(len(numeric), len(numeric) + len(categorical))) if categorical else None)
    elif categorical:
        groups.append(("categorical", encoding(OneHotEncoder(
            handle_unknown="infrequent_if_exist", max_categories=64, sparse_output=sparse,
            **levels(categorical))), categorical))
    transformers = [("numeric", numeric_step, numeric)] if numeric else []
    transformers += groups
    preprocess = ColumnTransformer(transformers, remainder="drop",
                                   sparse_threshold=0.3 if sparse else 0.0,
                                   verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", model_step)])


def category_levels(X: pd.DataFrame, kinds: dict[str, str]) -> dict[str, list]:
    """Each categorical column's distinct text, sorted (the levels an OrdinalEncoder would
    find in these rows)."""
    return {name: sorted(v for v in pd.unique(X[name].to_numpy()) if isinstance(v, str))
            for name in X.columns if kinds[name] == "categorical"}


def learns_from_rows(preprocess) -> bool:
    """Whether fitting the ColumnTransformer ``preprocess`` learns anything from the rows
    beyond their columns: not when each part passes them on or is an OrdinalEncoder given
    its levels and no cap on their number (its fit only checks the rows)."""
    from sklearn.preprocessing import OrdinalEncoder

    for _, transformer, _ in preprocess.transformers:
        if isinstance(transformer, str) and transformer in ("passthrough", "drop"):
            continue
        if isinstance(transformer, OrdinalEncoder) \
                and not isinstance(transformer.categories, str) \
                and getattr(transformer, "max_categories", None) is None \
                and getattr(transformer, "min_frequency", None) is None:
            continue
        return True
    return False


def fit_preprocessing(pipeline, X: pd.DataFrame, y, kinds: dict[str, str]):
    """Fit ``pipeline``'s preprocessing; its output for ``X`` and its numpy replay
    (``common/fast_preprocess.py``; None where it has none).

    Where fitting learns nothing from the rows, it is fitted on one of them and the rows
    are encoded by the replay, which ``compile_preprocess`` checks against scikit-learn's
    own transform: scikit-learn looks each text cell up in Python.
    """
    preprocess = pipeline[:-1]
    if learns_from_rows(preprocess.steps[0][1]):
        matrix = preprocess.fit_transform(X, y)
        return matrix, compile_preprocess(pipeline, kinds)
    preprocess.fit(X.iloc[:1])
    replay = compile_preprocess(pipeline, kinds)
    if replay is None:
        return preprocess.transform(X), None
    return replay.transform_frame(X, order="F"), replay


def check_objective(settings: Settings, task: str) -> str:
    names = metric_names(task)
    if not settings.objective:
        return f"validation:{DEFAULT_OBJECTIVE[task]}"
    split, _, name = settings.objective.partition(":")
    if split not in ("train", "validation") or name not in names:
        raise UserError(
            f"the tuning objective {settings.objective!r} is not a metric this trainer prints "
            f"for {task}; choose one of "
            + ", ".join(f"validation:{n}" for n in names)
        )
    return settings.objective


# At most this many training rows are scored for the train: metric lines (a seeded sample):
# enough to tell over-fitting (an accuracy on 20,000 rows is within 0.7 points of all
# rows' 95 % of the time), and a tenth of the fit's time at 100,000 rows.
TRAIN_SCORE_ROWS = 20_000


def evaluate(pipeline, X, y, task, classes, *, label_from_proba: bool = False,
             replay=None) -> dict[str, float]:
    """The metric lines' values for these rows.  ``label_from_proba``: the estimator's label
    is the class of highest probability (true of every built-in model), so one
    ``predict_proba`` gives both.  ``replay``: the preprocessing in numpy, which the
    estimator then takes alone."""
    if replay is not None:
        pipeline, X = pipeline.steps[-1][1], replay.transform_frame(X, order="F")
    if task != "classification":
        return regression_metrics(y, pipeline.predict(X))
    proba = pipeline.predict_proba(X) if hasattr(pipeline, "predict_proba") else None
    if proba is not None and label_from_proba:
        predictions = pipeline.classes_[proba.argmax(axis=1)]
    else:
        predictions = pipeline.predict(X)
    return classification_metrics(y, predictions, proba, classes)


def scored_training_rows(X: pd.DataFrame, y: pd.Series, seed: int):
    """The training rows the train: lines score: all of them, or a seeded sample."""
    if len(X) <= TRAIN_SCORE_ROWS:
        return X, y
    rows = np.sort(np.random.default_rng(seed).choice(len(X), TRAIN_SCORE_ROWS, replace=False))
    log.info("train metrics: scored on a seeded sample of %d of the %d training rows",
             TRAIN_SCORE_ROWS, len(X))
    return X.iloc[rows], y.iloc[rows]


# -- columns ---------------------------------------------------------------------------------
def hyperparameter_error(key: str):
    def error(item: str, expected: str, hint: str) -> HyperparameterError:
        return HyperparameterError(key, item, expected, hint=hint)
    return error


def ignore_resolver(items: list[str]):
    """ignore_columns as a function of the table read: the names of the columns to leave out."""
    return select.leave_out(items, hyperparameter_error("ignore_columns"), "ignore_columns")


def column_names(items: list[str], table: Table, key: str) -> list[str]:
    """Names or 0-based indexes of the files' columns (a hyperparameter's list) as names."""
    columns = table.all_columns or [str(c) for c in table.frame.columns]
    return select.named_columns(items, columns, has_header=table.has_header,
                                error=hyperparameter_error(key))


def leave_out_identifiers(X: pd.DataFrame, table: Table, settings: Settings) -> pd.DataFrame:
    """The features without the columns that identify rows (``keep_columns`` keeps them);
    each left out is recorded as ignored, as ``ignore_columns`` would have it."""
    keep = set(column_names(settings.keep_columns, table, "keep_columns"))
    identifiers, distinct = identifier_columns(X.drop(columns=[c for c in keep if c in X]))
    for name in identifiers:
        log.warning("leaving out column %r: it identifies rows (%s), which teaches a model "
                    "nothing about new rows; keep_columns=%s keeps it", name,
                    "text distinct on almost every row" if X[name].dtype == object
                    else "a row counter", name)
    for name in distinct:
        log.warning("column %r holds a different whole number on every row: if it is an "
                    "identifier, leave it out with ignore_columns=%s", name, name)
    if not identifiers:
        return X
    table.ignored = [c for c in table.all_columns if c in set(table.ignored) | set(identifiers)]
    return X.drop(columns=identifiers)


def input_columns(table: Table, target: str) -> list[Column]:
    """Every column of the training data in file order, with its role (for serve)."""
    ignored = set(table.ignored)
    return [Column(name, "target" if name == target else
                   "ignored" if name in ignored else "feature")
            for name in table.all_columns]


def read_channel(paths: Paths, channels: data.Channels, name: str, header: str,
                 settings: Settings) -> Table:
    return read_folder(paths.channel_dir(name), header=header, what=f"channel {name!r}",
                       expected=channels.formats.get(name),
                       ignore=ignore_resolver(settings.ignore_columns)
                       if settings.ignore_columns else None)


def labels(y: pd.Series) -> pd.Series:
    """Class labels as training reports them (a target read as 1.0 holds the class 1).

    Numbers and booleans keep a numpy type: scikit-learn cannot tell the kind of
    target an object array of them is.
    """
    values = cells.label_column(y.to_numpy(dtype=object))
    kinds = {type(v) for v in values}
    for kind, dtype in ((bool, bool), (int, np.int64), (float, np.float64)):
        if kinds == {kind}:
            return pd.Series(values.astype(dtype), index=y.index)
    return pd.Series(values, index=y.index, dtype=object)


def train(paths: Paths, settings: Settings, input_config: dict) -> TrainingResult:
    """Fit and save the model (a job on one instance; several: train/leader.py)."""
    started = time.monotonic()
    channels = data.choose_channels(paths, input_config)
    header = settings.header if settings.header != "auto" else channels.header

    table = read_channel(paths, channels, channels.training, header, settings)
    target = resolve_target(table, settings.target)
    if target in table.ignored:
        raise HyperparameterError("ignore_columns", ",".join(map(str, settings.ignore_columns)),
                                  "columns other than the target",
                                  hint=f"it names the target column {target!r}")
    X, y = data.split_xy(table, target, "training")
    X = leave_out_identifiers(X, table, settings)

    task = infer_task(y) if settings.task == "auto" else settings.task
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise UserError(f"task is regression but the target column {target!r} holds text "
                        f"(e.g. {y.iloc[0]!r}); set task=classification or pick another target")
    objective = check_objective(settings, task)
    check_task(settings.model, task, target, y)
    estimator, params = build_estimator(settings.model, task, settings)
    kinds = data.feature_kinds(X)
    parts = data.date_parts(kinds, table)
    feature_names = [str(c) for c in X.columns]
    X = conform_features(X, kinds, table, "training data", parts)
    if task == "classification":
        y = labels(y)

    if channels.validation:
        val_table = read_channel(paths, channels, channels.validation, header, settings)
        val_dir = paths.channel_dir(channels.validation)
        if target not in val_table.frame.columns:
            raise UserError(f"validation data under {val_dir} has no target column {target!r}")
        X_val, y_val = data.split_xy(val_table, target, "validation")
        X_val = conform_features(data.align_validation(X_val, feature_names, val_dir), kinds,
                                 val_table, "validation data", parts)
        if task == "classification":
            y_val = labels(y_val)
        X_fit, y_fit = X, y
    else:
        log.info("no validation channel: holding out %.0f%% of the training rows",
                 settings.holdout_fraction * 100)
        X_fit, X_val, y_fit, y_val = small_data.holdout(X, y, task, settings.holdout_fraction,
                                                        settings.seed)
    # From here each row is held once: the frame as read goes (a copy: an empty slice
    # would be a view holding every column of it).
    table.frame = table.frame.iloc[:0].copy()
    del X, y

    classes = None
    if task == "classification":
        classes = sorted(pd.unique(y_fit), key=_sort_key)
        if len(classes) < 2:
            raise UserError(
                f"the target column {target!r} has a single class ({classes[0]!r}) in the "
                "training data; classification needs at least two (or set task=regression)"
            )
        unseen = sorted(set(pd.unique(y_val)) - set(classes), key=_sort_key)
        if unseen:
            log.warning("validation data has classes never seen in training: %s", unseen[:10])

    params.update(small_data.fit_to_size(estimator, X_fit, y_fit, task, settings))
    native = uses_native_categories(estimator, settings)
    model_kinds = column_kinds(kinds, parts)
    pipeline = build_pipeline(estimator, X_fit, model_kinds,
                              scale=settings.model.scale_numeric,
                              native_categories=native,
                              sparse=settings.model.name == "linear",
                              categories=category_levels(X_fit, model_kinds) if native
                              else None)
    log.info("fitting %s on %d rows x %d features (%s, target %r), parameters %s",
             type(estimator).__name__, len(X_fit), X_fit.shape[1], task, target,
             json.dumps(params, default=str))
    training_rows = len(X_fit)
    scored = scored_training_rows(X_fit, y_fit, settings.seed)
    fit_started = time.monotonic()
    try:
        # The preprocessing's output is all the estimator needs: the rows as read go
        # before it is fitted (what Pipeline.fit does, without holding both at once).
        matrix, replay = fit_preprocessing(pipeline, X_fit, y_fit, model_kinds)
        del X_fit
        release_free_memory()  # before the estimator makes its own copies
        pipeline.steps[-1][1].fit(matrix, y_fit)
        del matrix
    except (ValueError, TypeError) as exc:
        if is_invalid_parameter(exc):
            raise UserError(f"invalid hyperparameter: {exc}") from exc
        raise
    log.info("fitted in %.2f s", time.monotonic() - fit_started)

    if task == "classification":
        # The order of predict_proba's columns, which serving reports.
        classes = [cells.label_value(c) for c in pipeline.classes_]
    from_proba = not settings.model.by_path
    metrics = {
        "train": evaluate(pipeline, *scored, task, classes, label_from_proba=from_proba,
                          replay=replay),
        "validation": evaluate(pipeline, X_val, y_val, task, classes,
                               label_from_proba=from_proba, replay=replay),
    }
    metadata = ModelMetadata(
        target=str(target),
        task=task,
        features=[Feature(c, kinds[c], parts.get(c)) for c in feature_names],
        classes=[_json_value(c) for c in classes] if classes is not None else None,
        model=settings.model.name,
        estimator=f"{type(estimator).__module__}.{type(estimator).__name__}",
        params={k: _json_value(v) for k, v in params.items()},
        metrics=metrics,
        versions=library_versions(),
        training_rows=training_rows,
        header=table.has_header,
        columns=input_columns(table, str(target)),
        ignored_columns=list(table.ignored),
    )
    return save_result(paths, pipeline, metadata, objective, started)


def save_result(paths: Paths, pipeline, metadata: ModelMetadata, objective: str,
                started: float) -> TrainingResult:
    """Write the model, its metadata and metrics.json; the metric lines to print."""
    remove_model(paths.model_dir)
    save_model(paths.model_dir, pipeline, metadata)
    text = json.dumps({"objective": objective, **metadata.metrics}, indent=2) + "\n"
    with writing(paths.output_data_dir, "the metrics", needed=len(text.encode("utf-8")),
                 file="metrics.json"):
        paths.output_data_dir.mkdir(parents=True, exist_ok=True)
        (paths.output_data_dir / "metrics.json").write_text(text, encoding="utf-8")
    log.info("wrote the model to %s in %.2f s overall", paths.model_dir,
             time.monotonic() - started)
    return TrainingResult(metadata, metadata.metrics, metric_lines(metadata.metrics, objective))


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)
