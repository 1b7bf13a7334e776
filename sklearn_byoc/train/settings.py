"""The built-in trainer's hyperparameters, decoded and typed once, when read.

SageMaker delivers every hyperparameter as a string (the generic
``Estimator`` sends ``str(value)``, framework estimators ``json.dumps(value)``).
One set of typing rules turns them into values, for the trainer's own
settings and for the estimator's parameters alike:

- an integer parameter takes ``5``, and ``5.0`` (a whole number written as a
  float, which is how tuning jobs write integer ranges' values at times),
  but not ``5.5`` or ``True``;
- a float parameter takes any number;
- a boolean takes ``true``/``false``, ``yes``/``no``, ``1``/``0``;
- ``None``/``null`` is None where the parameter allows it;
- a parameter that takes text takes the text as it is; lists and objects as JSON.

What a parameter takes comes from the estimator's own declaration of its
parameters (scikit-learn's parameter constraints), or, for an estimator
without one, from the type of its default value.

Keys are checked in two steps.  Before any data is read: a key that belongs
to neither the classifier nor the regressor of the chosen model nor to the
trainer fails with close matches, and a value that cannot be typed for any
of them fails.  Once the task is known, before fitting, the estimator of that
task checks its values (:func:`estimators.build_estimator`).  Keys the
platform adds (``sagemaker_*``, ``_*``) are never checked.
"""
from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sklearn_byoc.common.contract import (HyperparameterError, Hyperparameters, decode_value,
                                          is_platform_key, parse_bool)
from sklearn_byoc.common.tables import HEADER_CHOICES
from sklearn_byoc.train import estimators
from sklearn_byoc.train.estimators import (ANY, BOOL, DEFAULT_MODEL, FLOAT, INT, JSON, NONE, STR,
                                           ModelSpec)

log = logging.getLogger("train")

TASKS = ("auto", "classification", "regression")
DEFAULT_HOLDOUT = 0.2
# The trainer's own keys.  validation_fraction is the estimator's when it has
# a parameter of that name (HistGradientBoosting*, GradientBoosting*, SGD*,
# MLP*), and a deprecated name for holdout_fraction otherwise.
TRAINER_KEYS = ("model", "target", "task", "header", "holdout_fraction", "seed",
                "ignore_columns", "validation_fraction")

_EXPECTED = {INT: "an integer", FLOAT: "a number", BOOL: "a boolean (true or false)",
             NONE: "None", STR: "text", JSON: "a JSON list or object"}


# -- typing ---------------------------------------------------------------------------
def parse_literal(text: str) -> Any:
    """The Python value a hyperparameter string spells."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(stripped)
        except ValueError:
            pass
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    return text


def expected_text(kinds: frozenset[str]) -> str:
    names = [_EXPECTED[k] for k in (INT, FLOAT, BOOL, STR, JSON, NONE) if k in kinds]
    if INT in kinds and FLOAT in kinds:
        names.remove(_EXPECTED[INT])
    if len(names) <= 1:
        return names[0] if names else "a valid value"
    return ", ".join(names[:-1]) + " or " + names[-1]


def type_value(key: str, raw: Any, kinds: frozenset[str], hint: str = "") -> Any:
    """``raw`` (as SageMaker sent it) as a value of one of ``kinds``, or a HyperparameterError."""
    value = decode_value(raw)
    if isinstance(value, str):
        text, literal = value, parse_literal(value)
    else:  # a hyperparameters.json written by hand may hold numbers
        text, literal = json.dumps(value), value
    if ANY in kinds:
        return literal

    def refuse():
        return HyperparameterError(key, raw, expected_text(kinds), hint=hint)

    if literal is None:
        if NONE in kinds:
            return None
        if STR in kinds:
            return text
        raise refuse()
    if BOOL in kinds and INT not in kinds and not isinstance(literal, (list, dict)):
        try:
            return parse_bool(key, text)
        except HyperparameterError:
            if STR not in kinds and FLOAT not in kinds:
                raise refuse() from None
    if isinstance(literal, bool):
        if BOOL in kinds:
            return literal
        if STR in kinds:
            return text
        raise refuse()
    if isinstance(literal, int):
        if INT in kinds:
            return literal
        if FLOAT in kinds:
            return float(literal)
        if STR in kinds:
            return text
        raise refuse()
    if isinstance(literal, float):
        if FLOAT in kinds:
            return literal
        if INT in kinds and literal.is_integer():
            return int(literal)
        if STR in kinds and INT not in kinds:
            return text
        raise refuse()
    if isinstance(literal, (list, dict)):
        if JSON in kinds:
            return literal
        if STR in kinds:
            return text
        raise refuse()
    if STR in kinds:
        return text
    raise refuse()


def _range(key: str, raw: Any, number: float, low: float, high: float) -> None:
    if not low < number < high:
        raise HyperparameterError(key, raw, f"a number greater than {low} and less than {high}")


# -- the settings --------------------------------------------------------------------
@dataclass
class Settings:
    model: ModelSpec
    target: str | None = None
    task: str = "auto"
    header: str = "auto"
    holdout_fraction: float = DEFAULT_HOLDOUT
    seed: int = 42
    # ignore_columns as given: names, or 0-based indexes, in the user's order.
    ignore_columns: list[str | int] = field(default_factory=list)
    # Per estimator class: its typed parameters; and the per-class typing errors,
    # raised once the task picks that class.
    params: dict[type, dict[str, Any]] = field(default_factory=dict)
    errors: dict[type, dict[str, HyperparameterError]] = field(default_factory=dict)
    # Keys that belong to only some of the model's classes: key -> those classes.
    owners: dict[str, list[type]] = field(default_factory=dict)
    objective: str | None = None  # "validation:accuracy", from automatic model tuning
    # Keys the user gave, so the trainer's own defaults never override them.
    given: frozenset[str] = frozenset()


def _ignore_list(raw: Any) -> list[str | int]:
    """ignore_columns: "a,b" or "0,3", or a JSON list as framework estimators send it."""
    value = decode_value(raw)
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise HyperparameterError("ignore_columns", raw, "comma-separated column names "
                                      "or 0-based indexes, or a JSON list of them") from None
    items = value if isinstance(value, list) else str(value).split(",")
    out: list[str | int] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise HyperparameterError("ignore_columns", raw,
                                      "column names or 0-based indexes")
        text = str(item).strip()
        if text:
            out.append(text)
    return out


def read_settings(hp: Hyperparameters) -> Settings:
    """Every hyperparameter typed and checked as far as it can be before the data is read."""
    def given(key):
        return key in hp.raw and str(decode_value(hp.raw[key])).strip() != ""

    model_name = str(decode_value(hp.raw.get("model", DEFAULT_MODEL))).strip() or DEFAULT_MODEL
    model = estimators.resolve_model(model_name)
    settings = Settings(model=model)
    if given("target"):
        settings.target = str(decode_value(hp.raw["target"])).strip()
    for key, choices in (("task", TASKS), ("header", HEADER_CHOICES)):
        if given(key):
            text = str(decode_value(hp.raw[key])).strip().lower().replace("-", "_")
            if text not in choices:
                raise HyperparameterError(key, hp.raw[key], "one of " + ", ".join(choices))
            setattr(settings, key, text)
    if given("seed"):
        settings.seed = type_value("seed", hp.raw["seed"], frozenset({INT}))
        if settings.seed < 0:
            raise HyperparameterError("seed", hp.raw["seed"], "an integer of 0 or more")
    if given("ignore_columns"):
        settings.ignore_columns = _ignore_list(hp.raw["ignore_columns"])
    if given("holdout_fraction"):
        settings.holdout_fraction = type_value("holdout_fraction", hp.raw["holdout_fraction"],
                                               frozenset({FLOAT}))
        _range("holdout_fraction", hp.raw["holdout_fraction"], settings.holdout_fraction,
               0.0, 0.9)
    objective = hp.raw.get("_tuning_objective_metric")
    settings.objective = str(decode_value(objective)).strip() or None if objective else None

    classes = model.classes()
    defaults = {cls: estimators.constructor_defaults(cls) for cls in classes}
    estimator_keys = {k for k in hp.raw if not is_platform_key(k)
                      and (k not in TRAINER_KEYS or k == "validation_fraction")}
    if "validation_fraction" in estimator_keys \
            and not any("validation_fraction" in d for d in defaults.values()):
        estimator_keys.discard("validation_fraction")
        _deprecated_validation_fraction(hp, settings, classes)
    settings.params = {cls: {} for cls in classes}
    settings.errors = {cls: {} for cls in classes}
    others = None
    for key in sorted(estimator_keys):
        owners = [cls for cls in classes if key in defaults[cls]]
        if not owners:
            others = others if others is not None else estimators.all_known_params()
            if key in others:
                log.warning("hyperparameter %r is not a parameter of %s; ignored", key,
                            " or ".join(c.__name__ for c in classes))
                continue
            raise _unknown_key(key, hp.raw[key], classes, defaults)
        typed = {}
        for cls in owners:
            kinds = estimators.param_kinds(cls, key, defaults[cls][key])
            try:
                typed[cls] = type_value(key, hp.raw[key], kinds,
                                        hint=f"{cls.__name__}.{key} (default "
                                             f"{defaults[cls][key]!r})")
            except HyperparameterError as exc:
                settings.errors[cls][key] = exc
        if not typed:
            raise settings.errors[owners[0]][key]
        for cls, value in typed.items():
            settings.params[cls][key] = value
        if len(owners) < len(classes):
            settings.owners[key] = owners
    settings.given = frozenset(k for k in hp.raw if not is_platform_key(k))
    ignored = sorted(k for k in hp.raw if is_platform_key(k) and k != "_tuning_objective_metric")
    if ignored:
        log.info("ignoring platform hyperparameters: %s", ", ".join(ignored))
    return settings


def _deprecated_validation_fraction(hp: Hyperparameters, settings: Settings,
                                    classes: list[type]) -> None:
    raw = hp.raw["validation_fraction"]
    names = " or ".join(c.__name__ for c in classes)
    if "holdout_fraction" in hp.raw:
        raise HyperparameterError(
            "validation_fraction", raw, "left out when holdout_fraction is given",
            hint=f"{names} has no parameter validation_fraction, so it would set the same "
                 "hold-out as holdout_fraction: give holdout_fraction only")
    settings.holdout_fraction = type_value("validation_fraction", raw, frozenset({FLOAT}))
    _range("validation_fraction", raw, settings.holdout_fraction, 0.0, 0.9)
    log.warning("hyperparameter 'validation_fraction' sets the trainer's hold-out because %s "
                "has no parameter of that name; this use is deprecated: name it "
                "holdout_fraction", names)


def _unknown_key(key: str, raw: Any, classes: list[type],
                 defaults: dict[type, dict[str, Any]]) -> HyperparameterError:
    names = sorted({name for cls in classes for name in defaults[cls]})
    trainer = [k for k in TRAINER_KEYS if k != "validation_fraction"]
    close = difflib.get_close_matches(key, names + trainer, n=1)
    owners = " / ".join(c.__name__ for c in classes)
    return HyperparameterError(
        key, raw, f"a parameter of {owners} or a trainer setting",
        hint=("did you mean " + repr(close[0]) + "? " if close else "")
        + "trainer settings: " + ", ".join(trainer)
        + f"; {owners} parameters: " + ", ".join(names),
    )
