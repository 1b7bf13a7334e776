"""The estimators the built-in trainer offers, and their hyperparameters.

The ``model`` hyperparameter picks one by short name, or names any
scikit-learn-compatible estimator class by import path
(``sklearn.svm.SVC``, ``my_package.models:MyEstimator``).  Every other
hyperparameter that is a constructor parameter of the chosen estimator is
passed to it, typed by ``train/hyperparameters.py`` from what the parameter takes
(SageMaker delivers all hyperparameters as strings).
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import logging
from dataclasses import dataclass
from typing import Any

from sklearn_byoc.common.errors import HyperparameterError, UserError

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
    # The same, for the classifier only.
    classifier_defaults: tuple[tuple[str, object], ...] = ()
    # n_jobs=-1 unless given, where the estimator takes n_jobs.
    all_cores: bool = True

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
                    (("max_iter", 1000),),
                    # LogisticRegression's n_jobs only spreads one-vs-rest over classes,
                    # which its default solver never does; on scikit-learn 1.2 it still
                    # starts a process pool, and from 1.8 it warns that it has no effect.
                    all_cores=False),
        ModelChoice("knn",
                    "sklearn.neighbors.KNeighborsClassifier",
                    "sklearn.neighbors.KNeighborsRegressor", True,
                    "k nearest neighbours"),
        ModelChoice("sgd",
                    "sklearn.linear_model.SGDClassifier",
                    "sklearn.linear_model.SGDRegressor", True,
                    "linear model fitted by stochastic gradient descent: incremental, so on "
                    "several instances it visits every instance's rows",
                    # Logistic loss: probabilities for the metrics and for serve's output=all.
                    classifier_defaults=(("loss", "log_loss"),)),
    ]
}


# scikit-learn's private names the trainer relies on, read nowhere else (tests/unit/
# test_hyperparameters.py checks them on every supported scikit-learn line): the declared
# constraints of an estimator's parameters, the method that checks them, the error it raises
# (matched by name), and the constraint classes whose meaning hyperparameters.param_kinds
# reads by name.
CONSTRAINTS_ATTRIBUTE = "_parameter_constraints"
VALIDATE_METHOD = "_validate_params"
INVALID_PARAMETER_ERROR = "InvalidParameterError"
CONSTRAINT_CLASSES = ("Hidden", "Interval", "Options", "StrOptions", "HasMethods")
PRIVATE_NAMES = (CONSTRAINTS_ATTRIBUTE, VALIDATE_METHOD, INVALID_PARAMETER_ERROR,
                 *CONSTRAINT_CLASSES)

def declared_constraints(cls: type) -> dict | None:
    constraints = getattr(cls, CONSTRAINTS_ATTRIBUTE, None)
    return constraints if isinstance(constraints, dict) else None


def is_invalid_parameter(exc: BaseException) -> bool:
    return type(exc).__name__ == INVALID_PARAMETER_ERROR



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
class ModelSpec:
    """The ``model`` hyperparameter resolved: a built-in's two estimators, or one class."""

    name: str
    classifier: type | None
    regressor: type | None
    scale_numeric: bool
    defaults: tuple[tuple[str, object], ...] = ()
    by_path: bool = False
    classifier_defaults: tuple[tuple[str, object], ...] = ()
    all_cores: bool = True

    def classes(self) -> list[type]:
        return list(dict.fromkeys(c for c in (self.classifier, self.regressor) if c is not None))

    def class_for(self, task: str) -> type:
        return self.classifier if task == "classification" else self.regressor


def resolve_model(name: str) -> ModelSpec:
    key = name.strip().lower().replace("-", "_")
    if key in MODELS:
        choice = MODELS[key]
        return ModelSpec(choice.name, choice.estimator_class("classification"),
                         choice.estimator_class("regression"), choice.scale_numeric,
                         choice.defaults, classifier_defaults=choice.classifier_defaults,
                         all_cores=choice.all_cores)
    if "." in name or ":" in name:
        cls = import_class(name.strip())
        # One class serves both tasks; check_task compares it with the task.
        return ModelSpec(name.strip(), cls, cls, scale_numeric=True, by_path=True)
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


def all_known_params() -> set[str]:
    names: set[str] = set()
    for choice in MODELS.values():
        for task in ("classification", "regression"):
            names.update(constructor_defaults(choice.estimator_class(task)))
    return names


# -- the estimator for the task --------------------------------------------------------
def check_task(spec: ModelSpec, task: str, target: str, y) -> None:
    """An estimator given by import path must be of the task's kind (checked on an instance:
    scikit-learn's is_classifier raises on a class)."""
    if not spec.by_path:
        return
    from sklearn.base import is_classifier, is_regressor

    cls = spec.class_for(task)
    try:
        instance = cls()
    except TypeError:
        return  # required arguments: the estimator's own fit will tell
    classifier, regressor = is_classifier(instance), is_regressor(instance)
    if task == "classification" and not classifier:
        what = "a regressor" if regressor else "neither a classifier nor a regressor"
        text = not _numeric(y)
        fix = ("choose a classifier (model=...)" if text
               else "set task=regression if those numbers are quantities, or choose a classifier")
        held = (f"text labels (e.g. {_first(y)!r})" if text
                else f"{y.nunique()} whole-number values, which task=auto takes as classes")
        raise UserError(f"model {spec.name} is {what}, but the task is classification: the "
                        f"target {target!r} holds {held}; {fix}")
    if task == "regression" and not regressor:
        what = "a classifier" if classifier else "neither a classifier nor a regressor"
        raise UserError(
            f"model {spec.name} is {what}, but the task is regression: the target {target!r} "
            f"holds {y.nunique()} distinct numbers (e.g. {_first(y)!r}); choose a regressor, "
            "or set task=classification if those numbers are classes"
        )


def _numeric(y) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)


def _first(y):
    present = y.dropna()
    value = present.iloc[0] if len(present) else None
    return value.item() if hasattr(value, "item") else value


def build_estimator(spec: ModelSpec, task: str, settings) -> tuple[Any, dict[str, Any]]:
    """The task's estimator with the user's parameters and the trainer's defaults.

    A key typed for the model's other estimator only is ignored with a warning
    (one tuning configuration may cover both tasks); a value that could not be
    typed for this estimator fails now.  The estimator then checks its values
    (ranges, options) before any fitting.
    """
    cls = spec.class_for(task)
    errors = settings.errors.get(cls, {})
    if errors:
        raise next(iter(errors.values()))
    chosen = dict(settings.params.get(cls, {}))
    for key, owners in settings.owners.items():
        if cls not in owners:
            log.warning("hyperparameter %r is a parameter of %s, not of %s (the task is %s); "
                        "ignored", key, " / ".join(c.__name__ for c in owners), cls.__name__,
                        task)
    defaults = constructor_defaults(cls)
    if "random_state" in defaults and "random_state" not in chosen:
        chosen["random_state"] = settings.seed
    # Use every core the instance has where the estimator can.
    if spec.all_cores and "n_jobs" in defaults and "n_jobs" not in chosen:
        chosen["n_jobs"] = -1
    own = spec.classifier_defaults if task == "classification" else ()
    for key, value in spec.defaults + own:
        if key in defaults and key not in chosen:
            chosen[key] = value
    try:
        estimator = cls(**chosen)
    except TypeError as exc:
        raise UserError(f"model {spec.name} cannot be made with these parameters: {exc}") \
            from exc
    # scikit-learn checks parameters against the class's _parameter_constraints (1.2 on);
    # an estimator of the user's own that declares none is checked by its fit alone.
    validate = getattr(estimator, VALIDATE_METHOD, None)
    if callable(validate) and declared_constraints(cls) is not None:
        try:
            validate()
        except (ValueError, TypeError) as exc:
            if is_invalid_parameter(exc):
                raise UserError(f"invalid hyperparameter: {exc}") from exc
            raise
    return estimator, chosen
