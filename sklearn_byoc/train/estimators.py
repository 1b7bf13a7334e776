"""The estimators the built-in trainer offers, and their hyperparameters.

The ``model`` hyperparameter picks one by short name, or names any
scikit-learn-compatible estimator class by import path
(``sklearn.svm.SVC``, ``my_package.models:MyEstimator``).  Every other
hyperparameter that is a constructor parameter of the chosen estimator is
passed to it, typed from the default value in the constructor's signature
(SageMaker delivers all hyperparameters as strings).
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import json
import logging
from dataclasses import dataclass
from typing import Any

from sklearn_byoc.common.contract import HyperparameterError, decode_value, parse_bool

log = logging.getLogger("train")


@dataclass(frozen=True)
class ModelChoice:
    name: str
    classifier: str  # import path
    regressor: str
    scale_numeric: bool  # distance- and gradient-based models want scaled inputs
    summary: str
    # The trainer's own defaults where scikit-learn's suit a library better than
    # a training job; a hyperparameter of the same name wins.
    defaults: tuple[tuple[str, object], ...] = ()

    def estimator_class(self, task: str) -> type:
        return import_class(self.classifier if task == "classification" else self.regressor)


MODELS = {
    choice.name: choice
    for choice in [
        ModelChoice("gradient_boosting",
                    "sklearn.ensemble.HistGradientBoostingClassifier",
                    "sklearn.ensemble.HistGradientBoostingRegressor", False,
                    "histogram gradient boosting: fast, strong default for tabular data",
                    # Stop adding trees once held-out loss stops improving, even on
                    # small data: better generalisation and fewer trees to evaluate
                    # per prediction.
                    (("early_stopping", True),)),
        ModelChoice("random_forest",
                    "sklearn.ensemble.RandomForestClassifier",
                    "sklearn.ensemble.RandomForestRegressor", False,
                    "random forest of decision trees"),
        ModelChoice("extra_trees",
                    "sklearn.ensemble.ExtraTreesClassifier",
                    "sklearn.ensemble.ExtraTreesRegressor", False,
                    "extremely randomized trees"),
        ModelChoice("decision_tree",
                    "sklearn.tree.DecisionTreeClassifier",
                    "sklearn.tree.DecisionTreeRegressor", False,
                    "a single decision tree"),
        ModelChoice("linear",
                    "sklearn.linear_model.LogisticRegression",
                    "sklearn.linear_model.Ridge", True,
                    "logistic regression (classification) or ridge regression",
                    (("max_iter", 1000),)),
        ModelChoice("knn",
                    "sklearn.neighbors.KNeighborsClassifier",
                    "sklearn.neighbors.KNeighborsRegressor", True,
                    "k nearest neighbours"),
    ]
}
DEFAULT_MODEL = "gradient_boosting"


def import_class(path: str) -> type:
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    if not module_name:
        raise HyperparameterError("model", path, "a model name or a module.Class path",
                                  hint=f"built-in names: {', '.join(MODELS)}")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise HyperparameterError(
            "model", path, "a model name or an importable estimator class",
            hint=f"built-in names: {', '.join(MODELS)}; import failed: {exc}",
        ) from exc
    if not (inspect.isclass(cls) and hasattr(cls, "fit") and hasattr(cls, "predict")):
        raise HyperparameterError("model", path, "an estimator class with fit and predict")
    return cls


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    estimator_class: type
    scale_numeric: bool
    defaults: tuple[tuple[str, object], ...] = ()


def resolve_model(name: str, task: str) -> ResolvedModel:
    key = name.strip().lower().replace("-", "_")
    if key in MODELS:
        choice = MODELS[key]
        return ResolvedModel(choice.name, choice.estimator_class(task), choice.scale_numeric,
                             choice.defaults)
    if "." in name or ":" in name:
        cls = import_class(name.strip())
        return ResolvedModel(name.strip(), cls, scale_numeric=True)
    close = difflib.get_close_matches(key, list(MODELS), n=1)
    raise HyperparameterError(
        "model", name, "one of " + ", ".join(MODELS) + " or an estimator's import path",
        hint=f"did you mean {close[0]!r}?" if close else "",
    )


def constructor_defaults(cls: type) -> dict[str, Any]:
    signature = inspect.signature(cls.__init__)
    return {
        name: param.default
        for name, param in signature.parameters.items()
        if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    }


def parse_literal(text: str) -> Any:
    """A string hyperparameter as the Python value it spells."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.strip()[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def convert_param(cls: type, key: str, raw: Any, default: Any) -> Any:
    """Type ``raw`` for parameter ``key`` from its default in ``cls``'s signature."""
    value = decode_value(raw)
    literal = parse_literal(value) if isinstance(value, str) else value
    where = f"{cls.__name__}.{key} (default {default!r})"
    if isinstance(default, bool):
        return parse_bool(key, value)
    if isinstance(default, int):
        if isinstance(literal, bool) or not isinstance(literal, (int, float)) and literal is not None:
            raise HyperparameterError(key, raw, "an integer", hint=where)
        return literal
    if isinstance(default, float):
        if isinstance(literal, bool) or not isinstance(literal, (int, float)) and literal is not None:
            raise HyperparameterError(key, raw, "a number", hint=where)
        return float(literal) if isinstance(literal, int) else literal
    return literal


def all_known_params() -> set[str]:
    names: set[str] = set()
    for choice in MODELS.values():
        for task in ("classification", "regression"):
            names.update(constructor_defaults(choice.estimator_class(task)))
    return names


def build_estimator(model: ResolvedModel, params: dict[str, Any], *, seed: int,
                    trainer_keys: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """The estimator with user parameters applied; returns it and the parameters used.

    A key that belongs to another built-in model is ignored with a warning
    (tuning jobs often share one set of hyperparameters across models); a key
    that belongs to no model is a typo and fails with the valid names.
    """
    cls = model.estimator_class
    defaults = constructor_defaults(cls)
    chosen: dict[str, Any] = {}
    others = None
    for key, raw in params.items():
        if key in defaults:
            chosen[key] = convert_param(cls, key, raw, defaults[key])
            continue
        others = others if others is not None else all_known_params()
        if key in others:
            log.warning("hyperparameter %r is not a parameter of %s; ignored", key, cls.__name__)
            continue
        candidates = sorted(defaults) + list(trainer_keys)
        close = difflib.get_close_matches(key, candidates, n=1)
        raise HyperparameterError(
            key, raw, f"a parameter of {cls.__name__} or a trainer setting",
            hint=("did you mean " + repr(close[0]) + "? " if close else "")
            + "trainer settings: " + ", ".join(trainer_keys)
            + f"; {cls.__name__} parameters: " + ", ".join(sorted(defaults)),
        )
    if "random_state" in defaults and "random_state" not in chosen:
        chosen["random_state"] = seed
    # Use every core the instance has where the estimator can.
    if "n_jobs" in defaults and "n_jobs" not in chosen:
        chosen["n_jobs"] = -1
    for key, value in model.defaults:
        if key in defaults and key not in chosen:
            chosen[key] = value
    return cls(**chosen), chosen
