"""What a fitted estimator says of the features it takes, when no metadata.json does.

A model file written by plain scikit-learn code (or a script for AWS's
scikit-learn image) comes without train's metadata: the features' names and
number are read from ``feature_names_in_`` / ``n_features_in_``, and which of
them are text from the encoders and imputers of its ColumnTransformer.
"""
from __future__ import annotations

import numpy as np

from sklearn_byoc.common.model_files import Feature, ModelMetadata

NUMERIC, CATEGORICAL = "numeric", "categorical"


def is_classifier(estimator) -> bool:
    try:
        from sklearn.base import is_classifier as sklearn_is_classifier

        return bool(sklearn_is_classifier(estimator))
    except Exception:  # noqa: BLE001 - not a scikit-learn object
        return hasattr(estimator, "classes_")


def describe_estimator(estimator) -> tuple[ModelMetadata, bool, str] | None:
    """(metadata, fitted on named columns, the rule that typed the features), read from a
    fitted estimator; None when it does not say how many features it takes."""
    names = getattr(estimator, "feature_names_in_", None)
    width = getattr(estimator, "n_features_in_", None)
    if names is not None:
        names, named = [str(n) for n in names], True
    elif isinstance(width, (int, np.integer)):
        names, named = [f"x{i}" for i in range(int(width))], False
    else:
        return None
    kinds, rule = feature_kinds(estimator, names)
    task = "classification" if is_classifier(estimator) else "regression"
    classes = getattr(estimator, "classes_", None) if task == "classification" else None
    metadata = ModelMetadata(
        target="", task=task, features=[Feature(n, kinds[n]) for n in names],
        classes=[_plain(c) for c in classes] if classes is not None else None,
        estimator=estimator_name(estimator), header=named)
    return metadata, named, rule


def estimator_name(estimator) -> str:
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return f"{type(final).__module__}.{type(final).__name__}"


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def feature_kinds(estimator, names: list[str]) -> tuple[dict[str, str], str]:
    """Each feature's kind, from the fitted transformers where they say."""
    transformer = column_transformer(estimator)
    if transformer is None:
        return {n: NUMERIC for n in names}, (
            "no ColumnTransformer says which features are text, so every feature is read "
            "as a number")
    kinds: dict[str, str] = {}
    for _, step, columns in transformer.transformers_:
        selected = selected_columns(columns, names)
        if selected is None:
            continue
        kind = branch_kind(step)
        for name in selected:
            # A column used by a text branch anywhere must accept text.
            if kinds.get(name) != CATEGORICAL:
                kinds[name] = kind
    untyped = [n for n in names if n not in kinds]
    for name in untyped:
        kinds[name] = NUMERIC
    rule = "feature kinds read from the fitted ColumnTransformer"
    if untyped:
        rule += f"; {len(untyped)} column(s) it does not type are read as numbers"
    return kinds, rule


def column_transformer(estimator):
    from sklearn.compose import ColumnTransformer

    if isinstance(estimator, ColumnTransformer):
        return estimator
    steps = getattr(estimator, "steps", None)
    if steps:
        first = steps[0][1]
        if isinstance(first, ColumnTransformer):
            return first
    return None


def selected_columns(columns, names: list[str]) -> list[str] | None:
    if isinstance(columns, str):
        return [columns] if columns in names else None
    if isinstance(columns, (int, np.integer)):
        return [names[int(columns)]]
    if isinstance(columns, slice):
        return names[columns]
    try:
        items = list(columns)
    except TypeError:
        return None  # a callable selector: its choice is not recorded by name
    if items and all(isinstance(c, (bool, np.bool_)) for c in items):
        return [n for n, keep in zip(names, items) if keep]
    if all(isinstance(c, (int, np.integer)) for c in items):
        return [names[int(c)] for c in items]
    return [str(c) for c in items if str(c) in names]


def branch_kind(step) -> str:
    """A text branch (encoders with text categories, imputers filling text) or a number one."""
    if isinstance(step, str):  # "drop" or "passthrough"
        return CATEGORICAL if step == "drop" else NUMERIC
    leaves = [s for _, s in step.steps] if hasattr(step, "steps") else [step]
    for leaf in leaves:
        categories = getattr(leaf, "categories_", None)
        if categories is not None:
            if any(np.asarray(c).dtype.kind in "OUS" for c in categories):
                return CATEGORICAL
            return NUMERIC
        statistics = getattr(leaf, "statistics_", None)
        if statistics is not None and np.asarray(statistics).dtype.kind in "OUS":
            return CATEGORICAL
    return NUMERIC
