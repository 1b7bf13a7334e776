"""The built-in trainer: tabular CSV in, a fitted scikit-learn pipeline out.

Hyperparameters the trainer itself reads (everything else goes to the
estimator, see ``train/estimators.py``):

==================== ===================================================
``model``            estimator: a built-in name or an import path
``target``           target column: name or 0-based index (default: first)
``task``             ``auto`` | ``classification`` | ``regression``
``header``           ``auto`` | ``present`` | ``absent``
``validation_fraction`` held-out share when there is no validation channel
``seed``             random seed for the hold-out split and the estimator
==================== ===================================================
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sklearn_byoc.common.contract import Hyperparameters, Paths, is_platform_key
from sklearn_byoc.common.disk import writing
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.metrics import (DEFAULT_OBJECTIVE, classification_metrics, metric_lines,
                            metric_names, regression_metrics)
from sklearn_byoc.common.model_files import Feature, ModelMetadata, library_versions, remove_model, save_model
from sklearn_byoc.common.tables import HEADER_CHOICES, infer_task, read_csv_folder, resolve_target
from sklearn_byoc.train import data
from sklearn_byoc.train.estimators import DEFAULT_MODEL, build_estimator, resolve_model

log = logging.getLogger("train")

TRAINER_KEYS = ("model", "target", "task", "header", "validation_fraction", "seed")
TASKS = ("auto", "classification", "regression")


@dataclass
class Settings:
    model: str = DEFAULT_MODEL
    target: str | None = None
    task: str = "auto"
    header: str = "auto"
    validation_fraction: float = 0.2
    seed: int = 42
    estimator_params: dict[str, Any] = field(default_factory=dict)
    objective: str | None = None  # "validation:accuracy", from automatic model tuning

    @classmethod
    def from_hyperparameters(cls, hp: Hyperparameters) -> "Settings":
        settings = cls(
            model=hp.get_str("model", DEFAULT_MODEL),
            target=hp.get_str("target"),
            task=hp.get_choice("task", TASKS, "auto"),
            header=hp.get_choice("header", HEADER_CHOICES, "auto"),
            validation_fraction=hp.get_float("validation_fraction", 0.2, minimum=0.0,
                                             maximum=0.9, exclusive=True),
            seed=hp.get_int("seed", 42, minimum=0),
            objective=hp.get_str("_tuning_objective_metric"),
        )
        ignored = sorted(k for k in hp.raw if is_platform_key(k) and k not in hp.used)
        if ignored:
            log.info("ignoring platform hyperparameters: %s", ", ".join(ignored))
        settings.estimator_params = {
            k: v for k, v in hp.unused().items() if not is_platform_key(k)
        }
        return settings


@dataclass
class TrainingResult:
    metadata: ModelMetadata
    metrics: dict[str, dict[str, float]]
    metric_lines: list[str]


def build_pipeline(model_step, X: pd.DataFrame, kinds: dict[str, str], scale: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in X.columns if kinds[c] == "numeric"]
    categorical = [c for c in X.columns if kinds[c] == "categorical"]
    numeric_steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy="constant", fill_value="missing",
                                 keep_empty_features=True)),
        ("encode", OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=64,
                                 sparse_output=False)),
    ]
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        transformers.append(("categorical", Pipeline(categorical_steps), categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop",
                                   verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", model_step)])


def as_categorical_text(X: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Categorical cells as strings, so serving's CSV text matches training's values."""
    X = X.copy()
    for name, kind in kinds.items():
        if kind == "categorical":
            column = X[name].astype(object)
            X[name] = column.where(column.isna(), column.astype(str)).astype(object)
    return X


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


def holdout(X, y, task, fraction, seed):
    from sklearn.model_selection import train_test_split

    n_holdout = int(round(len(y) * fraction))
    if n_holdout < 1 or len(y) - n_holdout < 2:
        raise UserError(
            f"only {len(y)} training rows: too few to hold out a validation_fraction of "
            f"{fraction}; add rows or give a 'validation' channel"
        )
    stratify = None
    if task == "classification":
        counts = y.value_counts()
        if counts.min() >= 2 and n_holdout >= len(counts):
            stratify = y
        else:
            log.warning("hold-out split is not stratified: some classes are too rare")
    return train_test_split(X, y, test_size=n_holdout, random_state=seed, stratify=stratify)


def evaluate(pipeline, X, y, task, classes) -> dict[str, float]:
    predictions = pipeline.predict(X)
    if task == "classification":
        proba = pipeline.predict_proba(X) if hasattr(pipeline, "predict_proba") else None
        return classification_metrics(y, predictions, proba, classes)
    return regression_metrics(y, predictions)


def train(paths: Paths, hp: Hyperparameters, input_config: dict) -> TrainingResult:
    started = time.monotonic()
    settings = Settings.from_hyperparameters(hp)
    channels = data.choose_channels(paths, input_config)
    header = settings.header if settings.header != "auto" else channels.header

    train_dir = paths.channel_dir(channels.training)
    table = read_csv_folder(train_dir, header=header, what=f"channel {channels.training!r}")
    target = resolve_target(table, settings.target)
    X, y = data.split_xy(table, target, "training")

    task = infer_task(y) if settings.task == "auto" else settings.task
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise UserError(f"task is regression but the target column {target!r} holds text "
                        f"(e.g. {y.iloc[0]!r}); set task=classification or pick another target")
    objective = check_objective(settings, task)
    kinds = data.feature_kinds(X)
    X = as_categorical_text(X, kinds)
    if task == "classification":
        y = y.map(_label)

    if channels.validation:
        val_dir = paths.channel_dir(channels.validation)
        val_table = read_csv_folder(val_dir, header=header,
                                    what=f"channel {channels.validation!r}")
        if target not in val_table.frame.columns:
            raise UserError(f"validation data under {val_dir} has no target column {target!r}")
        X_val, y_val = data.split_xy(val_table, target, "validation")
        X_val = as_categorical_text(data.align_validation(X_val, X, val_dir), kinds)
        if task == "classification":
            y_val = y_val.map(_label)
        X_fit, y_fit = X, y
    else:
        log.info("no validation channel: holding out %.0f%% of the training rows",
                 settings.validation_fraction * 100)
        X_fit, X_val, y_fit, y_val = holdout(X, y, task, settings.validation_fraction,
                                             settings.seed)

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

    model = resolve_model(settings.model, task)
    estimator, params = build_estimator(model, settings.estimator_params, seed=settings.seed,
                                        trainer_keys=TRAINER_KEYS)
    pipeline = build_pipeline(estimator, X_fit, kinds, model.scale_numeric)
    log.info("fitting %s on %d rows x %d features (%s, target %r), parameters %s",
             type(estimator).__name__, len(X_fit), X_fit.shape[1], task, target,
             json.dumps(params, default=str))
    fit_started = time.monotonic()
    try:
        pipeline.fit(X_fit, y_fit)
    except (ValueError, TypeError) as exc:
        if type(exc).__name__ == "InvalidParameterError":
            raise UserError(f"invalid hyperparameter: {exc}") from exc
        raise
    log.info("fitted in %.2f s", time.monotonic() - fit_started)

    if task == "classification":
        # The order of predict_proba's columns, which serving reports.
        classes = [_label(c) for c in pipeline.classes_]
    metrics = {
        "train": evaluate(pipeline, X_fit, y_fit, task, classes),
        "validation": evaluate(pipeline, X_val, y_val, task, classes),
    }
    metadata = ModelMetadata(
        target=str(target),
        task=task,
        features=[Feature(str(c), kinds[c]) for c in X.columns],
        classes=[_json_value(c) for c in classes] if classes is not None else None,
        model=model.name,
        estimator=f"{type(estimator).__module__}.{type(estimator).__name__}",
        params={k: _json_value(v) for k, v in params.items()},
        metrics=metrics,
        versions=library_versions(),
        training_rows=len(X_fit),
        header=table.has_header,
    )
    remove_model(paths.model_dir)
    save_model(paths.model_dir, pipeline, metadata)
    text = json.dumps({"objective": objective, **metrics}, indent=2) + "\n"
    with writing(paths.output_data_dir, "the metrics", needed=len(text.encode("utf-8")),
                 file="metrics.json"):
        paths.output_data_dir.mkdir(parents=True, exist_ok=True)
        (paths.output_data_dir / "metrics.json").write_text(text, encoding="utf-8")
    log.info("wrote the model to %s in %.2f s overall", paths.model_dir,
             time.monotonic() - started)
    return TrainingResult(metadata, metrics, metric_lines(metrics, objective))


def _label(value):
    """Class labels as JSON-friendly Python values (1.0 read from CSV becomes 1)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
